import { extname } from 'node:path';
import type { CommandModule } from 'yargs';
import { experimentOverrides, withExperimentFlags, type ExperimentFlagArgs } from '../config/flags.ts';
import { writeFileAtomic } from '../data/atomic.ts';
import { ReproError } from '../errors.ts';
import { renderInspectPlot } from '../inspect/plot.ts';
import { inspectExperiment } from '../inspect/run.ts';
import { renderInspectTable } from '../inspect/table.ts';

interface InspectArgs extends ExperimentFlagArgs {
  experiment: string;
  json: boolean;
  plot?: string;
  'data-dir'?: string;
}

function checkPlotPath(path: string): void {
  const ext = extname(path).toLowerCase();
  if (ext === '.svg') return;
  if (ext === '.png') {
    throw new ReproError(`--plot ${path}: PNG output is not supported; write an .svg (rsvg-convert, ImageMagick or a browser turn it into a PNG)`);
  }
  throw new ReproError(`--plot ${path}: expected a file name ending in .svg`);
}

export const inspectCommand: CommandModule<object, InspectArgs> = {
  command: 'inspect <experiment>',
  describe: 'Build a model at initialisation, run one batch forward and backward, and report the scale of every weight, activation and gradient',
  builder: (yargs) =>
    withExperimentFlags(
      yargs.positional('experiment', { type: 'string', demandOption: true, describe: 'charlm-attention, charlm-conv, charlm-rnn, … or a .yaml path' }),
    )
      .option('json', { type: 'boolean', default: false, describe: 'print a JSON array with one object per tensor' })
      .option('plot', { type: 'string', describe: 'also draw log2(std) of every tensor against the FP16/FP8 ranges into this .svg file' })
      .option('data-dir', { type: 'string', describe: 'dataset directory (default: $REPRO_DATA_DIR, else <repo>/data)' })
      .example('$0 inspect charlm-attention --scaling unit --plot unit.svg', '')
      .example('$0 inspect charlm-conv --precision fp16 --json', ''),
  handler: async (args) => {
    if (args.plot) checkPlotPath(args.plot);
    const { overrides, flags } = experimentOverrides(args);
    const result = await inspectExperiment({
      experiment: args.experiment,
      overrides,
      flags,
      dataDir: args['data-dir'],
      note: (line) => process.stderr.write(`${line}\n`),
    });
    if (args.plot) writeFileAtomic(args.plot, renderInspectPlot(result));
    process.stdout.write(args.json ? `${JSON.stringify(result.tensors, null, 1)}\n` : `${renderInspectTable(result)}\n`);
  },
};
