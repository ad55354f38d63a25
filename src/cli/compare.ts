import { basename } from 'node:path';
import type { CommandModule } from 'yargs';
import { compareResults, formatComparison, PAPER_TABLES, resultsKind, type PaperTable } from '../results/compare.ts';
import { readResults } from '../results/csv.ts';

interface CompareArgs {
  a: string;
  b: string;
}

function labelsFor(a: string, b: string): [string, string] {
  const [left, right] = [basename(a), basename(b)];
  return left === right ? [a, b] : [left, right];
}

export const compareCommand: CommandModule<object, CompareArgs> = {
  command: 'compare <a> <b>',
  describe: 'Compare two results CSVs, or one with the paper (b = paper, paper-charlm or paper-bert)',
  builder: (yargs) =>
    yargs
      .positional('a', { type: 'string', demandOption: true, describe: 'results CSV' })
      .positional('b', { type: 'string', demandOption: true, describe: 'results CSV, or paper / paper-charlm / paper-bert' })
      .example('$0 compare results/sweep-reduced.csv paper', 'best lr per configuration vs the paper table'),
  handler: (args) => {
    const a = readResults(args.a);
    const paper: PaperTable | undefined =
      args.b === 'paper'
        ? resultsKind(a) === 'bert'
          ? 'paper-bert'
          : 'paper-charlm'
        : (PAPER_TABLES as readonly string[]).includes(args.b)
          ? (args.b as PaperTable)
          : undefined;
    const comparison = paper
      ? compareResults(a, paper, [basename(args.a), 'paper'])
      : compareResults(a, readResults(args.b), labelsFor(args.a, args.b));
    process.stdout.write(`${formatComparison(comparison)}\n`);
  },
};
