/** Host wrappers of the Philox kernels: random fills, quantisation, the epoch counter. */
import type { QuantiseFormat, QuantiseManyTensor, QuantiseOptions, Storage } from '../backend.ts';
import { checkDistinctStorages, tableImage, writeAddress, type DeviceTables, type TableImage } from './device-tables.ts';
import { QUANT_GRID_WORDS, QUANTISE_CHUNK, QUANTISE_TABLE_WORDS, RANDOM_MODULE } from './kernels/random.ts';
import { FP16_ENCODING, quantGridWords } from './quantise-grid.ts';
import { asCuda, type CudaRuntime } from './runtime.ts';
import { checkCount } from './strided.ts';

const TWO_32 = 4294967296;

/** The same argument checks as src/tensor/philox.ts; returns the key words. */
function philoxKey(op: string, seed: number, stream: number): [number, number] {
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 53) throw new RangeError(`${op}: Philox seed must be an integer in [0, 2^53) (got ${seed})`);
  if (!Number.isInteger(stream) || stream < 0 || stream >= TWO_32) throw new RangeError(`${op}: Philox stream must be an integer in [0, 2^32) (got ${stream})`);
  return [seed % TWO_32, Math.floor(seed / TWO_32)];
}

function epochAddress(op: string, epoch: Storage | null): number {
  if (!epoch) return 0;
  if (epoch.dtype !== 'i32' || epoch.size < 1) throw new TypeError(`${op}: epoch must be a 1-element int32 storage`);
  return asCuda(epoch, op).address;
}

export function random(
  rt: CudaRuntime,
  out: Storage,
  n: number,
  distribution: 'uniform' | 'normal',
  seed: number,
  stream: number,
  epoch: Storage | null,
  a: number,
  b: number,
): void {
  checkCount('random', 'out', out, n);
  if (out.dtype !== 'f32') throw new TypeError('random: out must be float32 storage');
  const [k0, k1] = philoxKey('random', seed, stream);
  const kernel = rt.kernel(RANDOM_MODULE, distribution === 'normal' ? 'random_normal' : 'random_uniform', ['p', 'i', 'u', 'u', 'u', 'p', 'd', 'd', 'i']);
  const oa = asCuda(out, 'random').address;
  rt.launchLinear(kernel, Math.ceil(n / 4), [oa, n, k0, k1, stream, epochAddress('random', epoch), a, b, oa % 16 === 0 ? 1 : 0]);
}

export function quantise(rt: CudaRuntime, x: Storage, out: Storage, n: number, format: QuantiseFormat, options: QuantiseOptions, epoch: Storage | null): void {
  checkCount('quantise', 'x', x, n);
  checkCount('quantise', 'out', out, n);
  if (x.dtype !== 'f32' || out.dtype !== 'f32') throw new TypeError('quantise: x and out must be float32 storage');
  const stochastic = options.rounding === 'stochastic';
  const [k0, k1] = stochastic ? philoxKey('quantise', options.seed, options.stream) : [0, 0];
  const target = quantGridWords(format, options.overflow);
  const fp16 = options.viaFp16 ? quantGridWords(FP16_ENCODING, options.overflow) : new Int32Array(QUANT_GRID_WORDS);
  const grid = `s${QUANT_GRID_WORDS}` as const;
  const kernel = rt.kernel(RANDOM_MODULE, 'quantise', ['p', 'p', 'i', grid, grid, 'i', 'i', 'u', 'u', 'u', 'p', 'i']);
  const xa = asCuda(x, 'quantise').address;
  const oa = asCuda(out, 'quantise').address;
  rt.launchLinear(kernel, Math.ceil(n / 4), [
    xa, oa, n, target, fp16, options.viaFp16 ? 1 : 0, stochastic ? 1 : 0,
    k0, k1, stochastic ? options.stream : 0, epochAddress('quantise', epoch), xa % 16 === 0 && oa % 16 === 0 ? 1 : 0,
  ]);
}

interface TableTensor {
  readonly address: number;
  readonly n: number;
  readonly stream: number;
}

function quantiseTableImage(tensors: readonly TableTensor[]): TableImage {
  checkDistinctStorages('quantiseMany', tensors.map((t) => [t.address]));
  return tableImage(tensors, QUANTISE_TABLE_WORDS, QUANTISE_CHUNK, (u32, i32, w, t, chunkStart) => {
    writeAddress(u32, w, t.address);
    i32[w + 2] = t.n;
    u32[w + 3] = t.stream;
    i32[w + 4] = t.address % 16 === 0 ? 1 : 0;
    i32[w + 5] = chunkStart;
  });
}

/** quantise of every tensor in place, in one launch through a cached device table of the tensors. */
export function quantiseMany(
  rt: CudaRuntime,
  tables: DeviceTables,
  tensors: readonly QuantiseManyTensor[],
  format: QuantiseFormat,
  options: Omit<QuantiseOptions, 'stream'>,
  epoch: Storage | null,
): void {
  const stochastic = options.rounding === 'stochastic';
  const described: TableTensor[] = [];
  tensors.forEach((t, i) => {
    checkCount('quantiseMany', `tensors[${i}]`, t.storage, t.n);
    if (t.storage.dtype !== 'f32') throw new TypeError(`quantiseMany: tensors[${i}] must be float32 storage`);
    if (stochastic) philoxKey('quantiseMany', options.seed, t.stream);
    // Empty tensors have no chunks; leaving them out keeps the table's chunk starts increasing.
    if (t.n > 0) described.push({ address: asCuda(t.storage, 'quantiseMany').address, n: t.n, stream: stochastic ? t.stream : 0 });
  });
  if (described.length === 0) return;
  const key = described.map((t) => `${t.address},${t.n},${t.stream}`).join(';');
  const table = tables.lookup(rt, key, () => quantiseTableImage(described));
  const [k0, k1] = stochastic ? philoxKey('quantiseMany', options.seed, 0) : [0, 0];
  const target = quantGridWords(format, options.overflow);
  const fp16 = options.viaFp16 ? quantGridWords(FP16_ENCODING, options.overflow) : new Int32Array(QUANT_GRID_WORDS);
  const grid = `s${QUANT_GRID_WORDS}` as const;
  const kernel = rt.kernel(RANDOM_MODULE, 'quantise_multi', ['p', 'i', 'i', grid, grid, 'i', 'i', 'u', 'u', 'p']);
  rt.launch(kernel, Math.min(table.chunks, rt.multiprocessors * 16), 1, 256, [
    table.block.address, table.count, table.chunks, target, fp16, options.viaFp16 ? 1 : 0, stochastic ? 1 : 0, k0, k1, epochAddress('quantiseMany', epoch),
  ]);
}

export function increment(rt: CudaRuntime, counter: Storage): void {
  if (counter.dtype !== 'i32' || counter.size < 1) throw new TypeError('increment: counter must be a 1-element int32 storage');
  rt.launch(rt.kernel(RANDOM_MODULE, 'increment_counter', ['p']), 1, 1, 32, [asCuda(counter, 'increment').address]);
}
