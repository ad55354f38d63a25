// `tsx bench/lanes-replay.ts --only "charlm-attention regular fp32" --lanes 1,8,16`
// GPU side of running several training steps side by side: N backends (one stream each) each
// capture the same training step as a CUDA graph, then every round replays each graph once and
// the host waits for all. No host data, no evaluation: this measures how well the GPU overlaps
// N step graphs. Prints steps/s summed over lanes and its ratio to one lane.
import { parseArgs } from 'node:util';
import { tryCreateCudaBackend } from '../src/backend/cuda/index.ts';
import { graphLane, replayRounds, type GraphLane } from './graph-lanes.ts';
import * as T from '../src/tensor/index.ts';
import { benchCharLmCases, trainingStep, type StepCase } from './charlm-cases.ts';
import { referenceCases } from './reference-cases.ts';

const { values } = parseArgs({
  options: {
    only: { type: 'string', default: 'charlm-attention regular fp32' },
    lanes: { type: 'string', default: '1,8,16' },
    rounds: { type: 'string', default: '100' },
  },
});
process.env.CUDA_DEVICE_MAX_CONNECTIONS ??= '32';
const laneCounts = values.lanes.split(',').map(Number);
const rounds = Number(values.rounds);
const cases = [...referenceCases(true), ...(await benchCharLmCases(true))].filter((c) => values.only.split(';').some((part) => c.key.includes(part)));

function buildLane(c: StepCase, seed: number): GraphLane {
  const backend = tryCreateCudaBackend();
  if (typeof backend === 'string') throw new Error(backend);
  return T.isolated(() => {
    T.setDefaultBackend(backend);
    T.setRandomContext(new T.RandomContext(seed));
    const built = c.build();
    const { step, dispose } = trainingStep(built);
    return graphLane(backend, step, () => {
      dispose();
      built.dispose();
    });
  });
}

const rows: string[][] = [];
for (const c of cases) {
  let alone = 0;
  for (const count of laneCounts) {
    const lanes = Array.from({ length: count }, (_, i) => buildLane(c, i + 1));
    const seconds = replayRounds(lanes, rounds);
    for (const lane of lanes) lane.dispose();
    const stepsPerSecond = (count * rounds) / seconds;
    if (alone === 0) alone = stepsPerSecond / count;
    rows.push([c.key, String(count), stepsPerSecond.toFixed(0), ((1000 * seconds) / rounds).toFixed(2), (stepsPerSecond / alone).toFixed(2)]);
    process.stderr.write(`${rows.at(-1)!.join('  ')}\n`);
  }
}
const header = ['case', 'lanes', 'steps/s (sum)', 'ms/round', 'x one lane'];
console.log(`| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|`);
for (const row of rows) console.log(`| ${row.join(' | ')} |`);
