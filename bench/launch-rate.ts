// `tsx bench/launch-rate.ts [--kernels 500] [--rounds 40] [--lanes 1,4,16] [--kernel copy]` (CUDA): how many
// kernels a second the GPU runs when every kernel is tiny, as captured graphs of one stream each
// (what `repro sweep --jobs N` lanes replay). Each lane captures a graph of K element-wise kernels
// over `--elements` floats; every round replays each lane's graph once. If side-by-side training
// runs stop gaining at about the same number of kernels a second, kernel count, not kernel
// work, is what limits them (README, "Several runs side by side").
// --kernel copy|quantise-sr|quantise-nearest picks the kernel: a copy, or FP16 rounding
// (stochastic or nearest-even), to see what a rounding pass costs next to a plain copy.
import { parseArgs } from 'node:util';
import { tryCreateCudaBackend } from '../src/backend/cuda/index.ts';
import { parseFormat } from '../src/formats/registry.ts';
import { graphLane, replayRounds, type GraphLane } from './graph-lanes.ts';

const { values } = parseArgs({
  options: {
    kernels: { type: 'string', default: '500' },
    rounds: { type: 'string', default: '40' },
    lanes: { type: 'string', default: '1,4,16' },
    elements: { type: 'string', default: '32,262144' },
    kernel: { type: 'string', default: 'copy' },
  },
});
process.env.CUDA_DEVICE_MAX_CONNECTIONS ??= '32';
if (!['copy', 'quantise-sr', 'quantise-nearest'].includes(values.kernel)) {
  console.error(`launch-rate: --kernel must be copy, quantise-sr or quantise-nearest (got ${values.kernel})`);
  process.exit(2);
}
const kernels = Number(values.kernels);
const rounds = Number(values.rounds);

function buildLane(elements: number): GraphLane {
  const backend = tryCreateCudaBackend();
  if (typeof backend === 'string') throw new Error(backend);
  const a = backend.alloc(elements, 'f32');
  const b = backend.alloc(elements, 'f32');
  const epoch = backend.alloc(1, 'i32');
  backend.fill(a, 0, elements, 1);
  backend.fill(b, 0, elements, 1);
  const fp16 = parseFormat('fp16');
  const launch = (from: typeof a, to: typeof a, i: number) => {
    if (values.kernel === 'copy') return backend.unary('copy', from, to, elements, 1, 1);
    const rounding = values.kernel === 'quantise-sr' ? 'stochastic' : 'nearest';
    backend.quantise(from, to, elements, fp16, { rounding, overflow: 'inf', viaFp16: false, seed: 1, stream: i }, rounding === 'stochastic' ? epoch : null);
  };
  const body = () => {
    for (let i = 0; i < kernels; i++) launch(i % 2 ? b : a, i % 2 ? a : b, i);
  };
  return graphLane(backend, body, () => {
    backend.release(a);
    backend.release(b);
    backend.release(epoch);
  });
}

const rows: string[][] = [];
for (const elements of values.elements.split(',').map(Number)) {
  for (const count of values.lanes.split(',').map(Number)) {
    const lanes = Array.from({ length: count }, () => buildLane(elements));
    const seconds = replayRounds(lanes, rounds);
    lanes.forEach((lane) => lane.dispose());
    const perSecond = (count * rounds * kernels) / seconds;
    rows.push([String(elements), String(count), (perSecond / 1000).toFixed(0), ((1e6 * seconds) / (rounds * kernels)).toFixed(2)]);
    process.stderr.write(`${rows.at(-1)!.join('  ')}\n`);
  }
}
console.log(`kernel: ${values.kernel}`);
const header = ['floats per kernel', 'lanes', 'thousand kernels/s (sum)', 'µs per round-kernel'];
console.log(`| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|`);
for (const row of rows) console.log(`| ${row.join(' | ')} |`);
