import { basename, dirname, extname, join } from 'node:path';
import type { CommandModule } from 'yargs';
import { experimentOverrides, withExperimentFlags, type ExperimentFlagArgs } from '../config/flags.ts';
import { loadSweep } from '../config/sweep-load.ts';
import { ReproError } from '../errors.ts';
import { formatTextTable } from '../results/text-table.ts';
import { runSweep } from '../train/sweep-runner.ts';
import { lrLabel, type SummaryRow } from '../train/sweep-summary.ts';
import { planSweep } from '../train/sweep-plan.ts';

interface SweepArgs extends ExperimentFlagArgs {
  sweep: string;
  jobs: number;
  processes: boolean;
  results?: string;
  'runs-dir': string;
  'data-dir'?: string;
}

/** results/<name>.csv → results/<name>-summary.csv */
export function summaryFileFor(resultsFile: string): string {
  const ext = extname(resultsFile) || '.csv';
  return join(dirname(resultsFile), `${basename(resultsFile, extname(resultsFile))}-summary${ext}`);
}

function summaryTable(rows: readonly SummaryRow[]): string {
  const bpc = (x: string | number | undefined) => (typeof x === 'number' ? (Number.isFinite(x) ? x.toFixed(3) : String(x)) : '');
  return formatTextTable(
    ['configuration', 'best lr', 'valid BPC', 'test BPC', 'reps', 'lrs tried'],
    rows.map((r) => [String(r['configuration']), lrLabel(Number(r['best_lr'])), bpc(r['valid_bpc']), bpc(r['test_bpc']), String(r['reps']), String(r['lrs_tried'])]),
  );
}

export const sweepCommand: CommandModule<object, SweepArgs> = {
  command: 'sweep <sweep>',
  describe: "Run a sweep: every configuration with the paper's learning-rate search, rows into one CSV, plus a summary",
  builder: (yargs) =>
    withExperimentFlags(
      yargs
        .positional('sweep', { type: 'string', demandOption: true, describe: 'a sweep name from repro list, or a path to a sweep .yaml file' })
        .option('jobs', { type: 'number', default: 1, describe: 'trials run at once (on one GPU: side by side in this process, one CUDA stream each; otherwise one process each)' })
        .option('processes', { type: 'boolean', default: false, describe: 'with --jobs > 1, run each trial in its own process even on one GPU' })
        .option('results', { type: 'string', describe: 'CSV for the trials (default results/<sweep name>.csv); the summary goes beside it' })
        .option('runs-dir', { type: 'string', default: 'runs', describe: 'where run directories (log, config, checkpoint) go' })
        .option('data-dir', { type: 'string', describe: 'dataset directory (default: $REPRO_DATA_DIR, else <repo>/data)' }),
    )
      .example('$0 sweep sweep-quick', 'regular vs unit-scaled charlm-quick, a few lrs each')
      .example('$0 sweep sweep-paper --jobs 16 --device cuda', "§A8's 20 lr searches, 16 runs at a time"),
  handler: async (args) => {
    if (!Number.isInteger(args.jobs) || args.jobs < 1) throw new ReproError(`--jobs: expected a positive integer, got ${args.jobs}`);
    const { overrides, flags } = experimentOverrides(args);
    const plan = planSweep(loadSweep(args.sweep), overrides, flags);
    const resultsFile = args.results ?? join('results', `${plan.name}.csv`);
    const summaryFile = summaryFileFor(resultsFile);
    const controller = new AbortController();
    const onInterrupt = () => {
      if (controller.signal.aborted) process.exit(130);
      process.stderr.write('\nstopping: no new trials; running ones checkpoint and stop (Ctrl-C again quits at once)\n');
      controller.abort();
    };
    process.on('SIGINT', onInterrupt);
    try {
      process.stdout.write(`sweep ${plan.name}: ${plan.configurations.length} configurations, ${args.jobs} at a time; rows -> ${resultsFile}\n`);
      const summary = await runSweep({
        plan,
        resultsFile,
        summaryFile,
        runsDir: args['runs-dir'],
        jobs: args.jobs,
        placement: args.processes ? 'processes' : undefined,
        dataDir: args['data-dir'],
        signal: controller.signal,
        log: (line) => process.stdout.write(`${line}\n`),
      });
      process.stdout.write(`${summaryTable(summary)}\nsummary -> ${summaryFile}\n`);
    } finally {
      process.off('SIGINT', onInterrupt);
    }
  },
};
