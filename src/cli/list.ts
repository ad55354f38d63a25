import type { CommandModule } from 'yargs';
import { listExperiments, listSweeps, type CatalogueEntry } from '../config/catalogue.ts';
import { formatTextTable } from '../results/text-table.ts';

function section(title: string, entries: readonly CatalogueEntry[]): string {
  if (entries.length === 0) return `${title}\n  (none)`;
  const table = formatTextTable(
    ['name', 'description'],
    entries.map((entry) => [entry.name, entry.description]),
  );
  return `${title}\n${table
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n')}`;
}

export const listCommand: CommandModule<object, object> = {
  command: 'list',
  describe: 'List the shipped experiments and sweeps with their one-line descriptions',
  handler: () => {
    const text = [
      section('Experiments (repro show <name>, repro run <name>):', listExperiments()),
      section('Sweeps (repro show <name>, repro sweep <name>):', listSweeps()),
    ].join('\n\n');
    process.stdout.write(`${text}\n`);
  },
};
