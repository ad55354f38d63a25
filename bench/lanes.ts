// `tsx bench/lanes.ts --device cuda --experiments "charlm-attention;charlm-rnn" --lanes 1,8,16 --steps 300`
// Several whole training runs (`repro run`, evaluation included) side by side in one process, each on
// a backend of its own (on CUDA: its own stream), as `repro sweep --jobs N` runs a sweep's trials on
// one GPU. Prints, per experiment and lane count, the wall time and the steps per second summed over
// the runs, and the speed-up of that sum over one run alone: how much a sweep gains from --jobs.
// --data DIR trains on a text dataset (train/valid/test.txt) instead of the experiment's dataset.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadExperiment } from '../src/config/load.ts';
import * as T from '../src/tensor/index.ts';
import { runExperiment } from '../src/train/run-experiment.ts';
import type { CharDataset } from '../src/data/charlm.ts';

const { values } = parseArgs({
  options: {
    device: { type: 'string', default: 'cuda' },
    experiments: { type: 'string', default: 'charlm-attention;charlm-conv;charlm-rnn' },
    lanes: { type: 'string', default: '1,8,16' },
    steps: { type: 'string', default: '300' },
    data: { type: 'string' },
    set: { type: 'string', multiple: true, default: [] },
  },
});

const experiments = values.experiments.split(';').filter((s) => s !== '');
const laneCounts = values.lanes.split(',').map(Number);
const steps = Number(values.steps);
process.env.CUDA_DEVICE_MAX_CONNECTIONS ??= '32';

const overrides = [
  `device=${values.device}`,
  `training.steps=${steps}`,
  'training.valid_interval=0',
  'training.checkpoint_interval=0',
  `training.log_interval=${Math.max(1, Math.floor(steps / 4))}`,
  ...(values.data ? ['data.dataset=text', `data.path=${values.data}`] : []),
  ...values.set,
];

const scratch = mkdtempSync(join(tmpdir(), 'repro-lanes-'));
const datasetCache = new Map<string, Promise<CharDataset>>();
const rows: string[][] = [];
try {
  for (const name of experiments) {
    let alone = 0;
    for (const lanes of laneCounts) {
      const started = performance.now();
      const results = await Promise.all(
        Array.from({ length: lanes }, (_, lane) => {
          const { config } = loadExperiment(name, [...overrides, `seed=${lane}`]);
          return T.isolated(() =>
            runExperiment({
              config,
              resultsFile: join(scratch, 'results.csv'),
              runsDir: join(scratch, 'runs'),
              progress: 'silent',
              ownBackend: true,
              datasetCache,
            }),
          );
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      const stepsPerSecond = (lanes * steps) / seconds;
      if (lanes === laneCounts[0]) alone = stepsPerSecond / lanes;
      const status = [...new Set(results.map((r) => r.status))].join('/');
      const meanRun = results.reduce((s, r) => s + r.seconds, 0) / lanes;
      rows.push([name, String(lanes), seconds.toFixed(1), meanRun.toFixed(1), stepsPerSecond.toFixed(0), (stepsPerSecond / alone).toFixed(2), status]);
      process.stderr.write(`${rows.at(-1)!.join('  ')}\n`);
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

const header = ['experiment', 'lanes', 'wall s', 'mean run s', 'steps/s (sum)', 'x one run', 'status'];
console.log(`| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|`);
for (const row of rows) console.log(`| ${row.join(' | ')} |`);
console.log(`(${steps} steps per run plus its final evaluation; device ${values.device})`);
