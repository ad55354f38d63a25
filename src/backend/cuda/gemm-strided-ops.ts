/**
 * Host wrapper of gemm_strided (kernels/gemm-strided.ts): validates the product like the CPU twin,
 * bounds-checks every operand before the kernel may touch device memory, and decides per operand
 * whether the kernel may use 16-byte vector accesses.
 */
import type { StridedGemmParams, StridedMatrix } from '../backend.ts';
import { checkStridedGemm } from '../strided-gemm-rules.ts';
import { GEMM_STRIDED_CAUSAL, GEMM_STRIDED_MODULE, GEMM_STRIDED_THREADS, GEMM_STRIDED_TILE } from './kernels/gemm-strided.ts';
import type { ParamKind } from './launch.ts';
import { addressAt, type CudaRuntime } from './runtime.ts';
import { checkCount } from './strided.ts';

const OP = 'gemmStrided';
const KINDS: readonly ParamKind[] = [
  'p', 'p', 'p', 'i', 'i', 'i', 'i', 'i', 'i', // a, b, c, m, n, k, lda, ldb, ldc
  'l', 'l', 'l', 'l', 'l', 'l', // batch strides of A, B, C
  'i', 'i', 'i', 'f', 'f', 'i', 'i', 'i', 'i', 'i', // batch1, transA, transB, alpha, beta, causal, vecA, vecB, vecC, tileRows
];
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
 * Rows of C per block: 64, unless that leaves multiprocessors without a block. Attention's
 * [256, 64] products over 16 (sequence, head) pairs make only 64 blocks of 64 rows, each walking
 * up to 256 keys; 32-row blocks took them from about 15 to 11 µs on the H200 (Nsight Compute; 16-row
 * ones, tried, were slower everywhere: too little arithmetic per shared-memory read).
 */
export function stridedGemmTileRows(m: number, n: number, batch: number, multiprocessors: number): number {
  const blocks = Math.ceil(m / GEMM_STRIDED_TILE) * Math.ceil(n / GEMM_STRIDED_TILE) * batch;
  return blocks >= multiprocessors ? 64 : 32;
}

export function gemmStrided(rt: CudaRuntime, p: StridedGemmParams): void {
  checkStridedGemm(p);
  for (const [name, s] of [['A', p.a], ['B', p.b], ['C', p.c]] as const) {
    if (s.storage.dtype !== 'f32') throw new TypeError(`${OP}: ${name} must be float32 storage, got ${s.storage.dtype}`);
  }
  const [batch0, batch1] = p.batch;
  if (p.m === 0 || p.n === 0 || batch0 === 0 || batch1 === 0) return;
  const a = prepare('A', p.a, p.transA ? p.k : p.m, p.transA ? p.m : p.k, p.batch);
  const b = prepare('B', p.b, p.transB ? p.n : p.k, p.transB ? p.k : p.n, p.batch);
  const c = prepare('C', p.c, p.m, p.n, p.batch);
  const gridX = Math.ceil(p.n / GEMM_STRIDED_TILE);
  const gridZ = batch0 * batch1;
  const tileRows = stridedGemmTileRows(p.m, p.n, gridZ, rt.multiprocessors);
  const gridY = Math.ceil(p.m / tileRows);
  if (gridY > MAX_GRID_YZ) throw new RangeError(`${OP}: m ${p.m} needs ${gridY} row tiles, above the grid's ${MAX_GRID_YZ}`);
  if (gridZ > MAX_GRID_YZ) throw new RangeError(`${OP}: batch ${batch0}·${batch1} = ${gridZ} is above the grid's ${MAX_GRID_YZ}`);
  // Tile indices run up to a tile past n and k in 32-bit ints.
  if (Math.max(p.n, p.k) > MAX_INT - GEMM_STRIDED_TILE) throw new RangeError(`${OP}: n ${p.n} or k ${p.k} is too large for the kernel's 32-bit indices`);
  // k = 0 and alpha = 0 need nothing special: the kernel then reads neither A nor B.
  const kernel = rt.kernel(GEMM_STRIDED_MODULE, 'gemm_strided', KINDS);
  kernel.launch(rt.stream, gridX, gridY, GEMM_STRIDED_THREADS, 0, [
    a.address, b.address, c.address, p.m, p.n, p.k, p.a.ld, p.b.ld, p.c.ld,
    a.strides[0], a.strides[1], b.strides[0], b.strides[1], c.strides[0], c.strides[1],
    batch1, p.transA ? 1 : 0, p.transB ? 1 : 0, p.alpha, p.beta, GEMM_STRIDED_CAUSAL[p.causal], a.vector ? 1 : 0, b.vector ? 1 : 0, c.vector ? 1 : 0, tileRows,
  ], gridZ);
}
