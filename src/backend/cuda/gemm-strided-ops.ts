/**
 * Host wrapper of gemm_strided (kernels/gemm-strided.ts): validates the product like the CPU twin,
 * bounds-checks every operand before the kernel may touch device memory, and decides per operand
 * whether the kernel may use 16-byte vector accesses.
 */
import type { StridedGemmParams, StridedMatrix } from '../backend.ts';
import { checkStridedGemm } from '../strided-gemm-rules.ts';
import { GEMM_STRIDED_CAUSAL, GEMM_STRIDED_MODULE, GEMM_STRIDED_PROBLEM_WORDS, GEMM_STRIDED_THREADS, GEMM_STRIDED_TILE } from './kernels/gemm-strided.ts';
import { writeWideWords, type ParamKind } from './launch.ts';
import { addressAt, type CudaRuntime } from './runtime.ts';
import { checkCount } from './strided.ts';

const OP = 'gemmStrided';
const KINDS: readonly ParamKind[] = [`s${GEMM_STRIDED_PROBLEM_WORDS}`, `s${GEMM_STRIDED_PROBLEM_WORDS}`, 'i']; // p0, p1, batches0
/** Grid y and z limit of cuLaunchKernel. */
const MAX_GRID_YZ = 65535;
const MAX_INT = 0x7fffffff;

interface PreparedOperand {
  readonly address: number;
  readonly strides: readonly [number, number];
  readonly vector: boolean;
}

/**
 * Checks one operand as stored (rows×cols per batch entry) and returns its kernel arguments. A
 * batch level of extent 1 gets stride 0, so a stride nothing uses cannot veto vector access.
 */
function prepare(name: string, s: StridedMatrix, rows: number, cols: number, batch: readonly [number, number]): PreparedOperand {
  if (s.ld < Math.max(1, cols)) throw new RangeError(`${OP}: ld of ${name} (${s.ld}) is smaller than its ${cols} columns`);
  if (s.ld > MAX_INT) throw new RangeError(`${OP}: ld of ${name} (${s.ld}) does not fit the kernel's 32-bit int`);
  const strides = [batch[0] === 1 ? 0 : s.batchStrides[0], batch[1] === 1 ? 0 : s.batchStrides[1]] as const;
  if (rows > 0 && cols > 0) {
    // The furthest element any batch entry reaches (strides are non-negative).
    const reach = (batch[0] - 1) * strides[0] + (batch[1] - 1) * strides[1] + (rows - 1) * s.ld + cols;
    checkCount(OP, name, s.storage, reach, s.offset);
  }
  const address = addressAt(s.storage, s.offset, OP);
  const vector = address % 16 === 0 && s.ld % 4 === 0 && strides[0] % 4 === 0 && strides[1] % 4 === 0;
  return { address, strides, vector };
}

/**
 * Rows of C per block: 64, unless that leaves fewer than two blocks per multiprocessor (the
 * kernel's register use lets two run on one at a time). Attention's products at the paper's size
 * (16 sequence-head pairs) run in one wave, so a block's latency is the kernel's: 32-row blocks,
 * twice as many doing half the work, took the [256, 64] products from about 15 to 11 µs on the
 * H200 and the [256, 256] scores from 14 to about 10 (paper-size reference step 2.04 → 2.01 ms;
 * 16-row blocks, tried, were slower everywhere: too little arithmetic per shared-memory read).
 */
export function stridedGemmTileRows(m: number, n: number, batch: number, multiprocessors: number): number {
  const blocks = Math.ceil(m / GEMM_STRIDED_TILE) * Math.ceil(n / GEMM_STRIDED_TILE) * batch;
  return blocks >= 2 * multiprocessors ? 64 : 32;
}

/**
 * Whether the kernel multiplies on tensor cores (TF32, FP32 accumulation): for every operand format
 * but FP32. Values already rounded to FP16, BF16 or FP8 are exact in TF32, so only the order of the
 * accumulation differs from the FMA path; 'tf32' products are rounded to TF32 as cuBLAS does.
 */
function usesTensorCores(p: Pick<StridedGemmParams, 'inputFormat'>): boolean {
  return p.inputFormat !== undefined && p.inputFormat !== 'fp32';
}

/** A checked product as the kernel's GsProblem struct, with its grid; null when it has no outputs. */
interface PackedProblem {
  readonly words: Int32Array;
  readonly tilesX: number;
  readonly tilesY: number;
  readonly batches: number;
  /** Runs on gemm_strided_tc. */
  readonly tensorCores: boolean;
}


function pack(rt: CudaRuntime, p: StridedGemmParams): PackedProblem | null {
  checkStridedGemm(p);
  for (const [name, s] of [['A', p.a], ['B', p.b], ['C', p.c]] as const) {
    if (s.storage.dtype !== 'f32') throw new TypeError(`${OP}: ${name} must be float32 storage, got ${s.storage.dtype}`);
  }
  const [batch0, batch1] = p.batch;
  if (p.m === 0 || p.n === 0 || batch0 === 0 || batch1 === 0) return null;
  const a = prepare('A', p.a, p.transA ? p.k : p.m, p.transA ? p.m : p.k, p.batch);
  const b = prepare('B', p.b, p.transB ? p.n : p.k, p.transB ? p.k : p.n, p.batch);
  const c = prepare('C', p.c, p.m, p.n, p.batch);
  const batches = batch0 * batch1;
  const tileRows = stridedGemmTileRows(p.m, p.n, batches, rt.multiprocessors);
  const tilesX = Math.ceil(p.n / GEMM_STRIDED_TILE);
  const tilesY = Math.ceil(p.m / tileRows);
  if (tilesY > MAX_GRID_YZ) throw new RangeError(`${OP}: m ${p.m} needs ${tilesY} row tiles, above the grid's ${MAX_GRID_YZ}`);
  if (batches > MAX_GRID_YZ) throw new RangeError(`${OP}: batch ${batch0}·${batch1} = ${batches} is above the grid's ${MAX_GRID_YZ}`);
  // Tile indices run up to a tile past n and k in 32-bit ints.
  if (Math.max(p.n, p.k) > MAX_INT - GEMM_STRIDED_TILE) throw new RangeError(`${OP}: n ${p.n} or k ${p.k} is too large for the kernel's 32-bit indices`);
  // k = 0 and alpha = 0 need nothing special: the kernel then reads neither A nor B.
  const words = new Int32Array(GEMM_STRIDED_PROBLEM_WORDS);
  const floats = new Float32Array(words.buffer);
  const wide = [a.address, b.address, c.address, a.strides[0], a.strides[1], b.strides[0], b.strides[1], c.strides[0], c.strides[1]];
  writeWideWords(words, wide);
  words.set([p.m, p.n, p.k, p.a.ld, p.b.ld, p.c.ld, batch1, p.transA ? 1 : 0, p.transB ? 1 : 0, GEMM_STRIDED_CAUSAL[p.causal], a.vector ? 1 : 0, b.vector ? 1 : 0, c.vector ? 1 : 0, tileRows], 18);
  floats[32] = p.alpha;
  floats[33] = p.beta;
  words[34] = tilesX;
  words[35] = tilesY;
  return { words, tilesX, tilesY, batches, tensorCores: usesTensorCores(p) };
}

/**
 * Independent products (none writes what another reads or writes), two per launch: side by side
 * in one grid, products too small to fill the GPU take little longer than one alone.
 */
export function gemmsStrided(rt: CudaRuntime, params: readonly StridedGemmParams[]): void {
  const packed = params.map((p) => pack(rt, p)).filter((p): p is PackedProblem => p !== null);
  // Products pair up only with one of the same kernel.
  for (const tensorCores of [false, true]) launchPairs(rt, packed.filter((p) => p.tensorCores === tensorCores), tensorCores);
}

function launchPairs(rt: CudaRuntime, packed: readonly PackedProblem[], tensorCores: boolean): void {
  const kernel = rt.kernel(GEMM_STRIDED_MODULE, tensorCores ? 'gemm_strided_tc' : 'gemm_strided', KINDS);
  for (let i = 0; i < packed.length; i += 2) {
    const first = packed[i]!;
    const second = packed[i + 1] ?? null;
    const gridZ = first.batches + (second?.batches ?? 0);
    if (gridZ > MAX_GRID_YZ) {
      // Too many batch entries for one grid: one launch each.
      for (const one of [first, second!]) kernel.launch(rt.stream, one.tilesX, one.tilesY, GEMM_STRIDED_THREADS, 0, [one.words, one.words, one.batches], one.batches);
      continue;
    }
    const gridX = Math.max(first.tilesX, second?.tilesX ?? 0);
    const gridY = Math.max(first.tilesY, second?.tilesY ?? 0);
    kernel.launch(rt.stream, gridX, gridY, GEMM_STRIDED_THREADS, 0, [first.words, (second ?? first).words, first.batches], gridZ);
  }
}

export function gemmStrided(rt: CudaRuntime, p: StridedGemmParams): void {
  gemmsStrided(rt, [p]);
}
