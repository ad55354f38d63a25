import { isAbsolute, relative } from 'node:path';
import type { CommandModule } from 'yargs';
import { experimentOverrides, withExperimentFlags, type ExperimentFlagArgs } from '../config/flags.ts';
import { loadExperiment } from '../config/load.ts';
import { PROGRESS_CHOICES, type ProgressChoice } from '../train/progress.ts';
import { runExperiment, type RunResult } from '../train/run-experiment.ts';

interface RunArgs extends ExperimentFlagArgs {
  experiment: string;
  resume?: string;
  results: string;
  'runs-dir': string;
  'data-dir'?: string;
  progress: ProgressChoice;
}

/** A path relative to the working directory when it lies inside it, else as it is. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}
const bpc = (x: number) => x.toFixed(3);

function summary(result: RunResult, args: RunArgs): string {
  const where = `run ${result.runId}`;
  if (result.status === 'interrupted') {
    return `${where}: interrupted at step ${result.stepsDone}; continue with: repro run ${args.experiment} --resume ${shown(result.runDir)}`;
  }
  if (result.status === 'diverged') {
    return `${where}: diverged at step ${result.stepsDone} (non-finite loss); row written to ${args.results}`;
  }
  const { train, valid, test } = result.bpc;
  return `${where}: ${result.status}, ${result.stepsDone} steps in ${result.seconds.toFixed(1)} s on ${result.device}; BPC train ${bpc(train)} valid ${bpc(valid)} test ${bpc(test)}; row written to ${args.results}`;
}

export const runCommand: CommandModule<object, RunArgs> = {
  command: 'run <experiment>',
  describe: 'Train one experiment and append its row to a results CSV',
  builder: (yargs) =>
    withExperimentFlags(
      yargs
        .positional('experiment', { type: 'string', demandOption: true, describe: 'a name from repro list, or a path to a .yaml file' })
        .option('resume', { type: 'string', describe: 'continue the run in this directory (runs/<run_id>) from its checkpoint' })
        .option('results', { type: 'string', default: 'results/charlm.csv', describe: 'CSV the run appends its row to' })
        .option('runs-dir', { type: 'string', default: 'runs', describe: 'where run directories (log, config, checkpoint) go' })
        .option('data-dir', { type: 'string', describe: 'dataset directory (default: $REPRO_DATA_DIR, else <repo>/data)' })
        .option('progress', { choices: PROGRESS_CHOICES, default: 'auto' as ProgressChoice, describe: 'bar on a terminal, plain lines otherwise' }),
    )
      .example('$0 run charlm-quick', 'about a minute on a 2-core CPU')
      .example('$0 run charlm-attention --scaling unit --precision fp16 --device cuda', '')
      .example('$0 run charlm-quick --resume runs/charlm-quick-20260101-120000-ab12 --steps 1000', ''),
  handler: async (args) => {
    const { overrides, flags } = experimentOverrides(args);
    const { config } = loadExperiment(args.experiment, overrides, flags);
    const controller = new AbortController();
    const onInterrupt = () => {
      if (controller.signal.aborted) process.exit(130);
      process.stderr.write('\nstopping after this step (checkpointing); press Ctrl-C again to quit at once\n');
      controller.abort();
    };
    process.on('SIGINT', onInterrupt);
    try {
      const result = await runExperiment({
        config,
        resultsFile: args.results,
        runsDir: args['runs-dir'],
        resumeDir: args.resume ?? null,
        dataDir: args['data-dir'],
        progress: args.progress,
        signal: controller.signal,
      });
      process.stdout.write(`${summary(result, args)}\n`);
      if (result.status === 'interrupted') process.exitCode = 130;
    } finally {
      process.off('SIGINT', onInterrupt);
    }
  },
};
