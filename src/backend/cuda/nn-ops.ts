/** Host wrappers of the row-wise and embedding kernels. */
import type { CrossEntropyGradParams, CrossEntropyParams, LayerNormGradParams, LayerNormParams, Storage } from '../backend.ts';
import { NN_MODULE, WARP_ROW_WIDTHS } from './kernels/nn.ts';
import type { Block } from './allocator.ts';
import { asCuda, type CudaRuntime } from './runtime.ts';
import { checkCount } from './strided.ts';
import { readFormatCode, storageFormatCode } from './kernels/prelude.ts';
import { checkLayerNormGradStorage, checkLayerNormStorage } from '../layer-norm-rules.ts';

function address(storage: Storage, op: string): number {
  return asCuda(storage, op).address;
}

/** Address of an optional storage; 0 (a null pointer) when absent. */
function optional(storage: Storage | null, op: string): number {
  return storage ? address(storage, op) : 0;
}

function requireDType(op: string, name: string, storage: Storage | null, dtype: 'f32' | 'i32'): void {
  if (storage && storage.dtype !== dtype) throw new TypeError(`${op}: ${name} must be ${dtype === 'f32' ? 'float32' : 'int32'} storage, got ${storage.dtype}`);
}

/** Columns per lane of the warp-per-row kernel for `cols`, or null when the row is too long for it. */
function warpWidth(cols: number, limit: number): number | null {
  if (cols <= 0) return null;
  for (const k of WARP_ROW_WIDTHS) if (k <= limit && cols <= 32 * k) return k;
  return null;
}

/** Rows a split column sum of the long-row gamma/beta pass covers (more past MAX_GRID_Y chunks); fixed, so the order is deterministic. */
const PARAM_CHUNK_ROWS = 256;
const MAX_GRID_Y = 65535;
/** Warps a block of layer_norm_grad_fused (LN_WARPS in the kernel source). */
const LN_WARPS = 8;
/**
 * Rows a layer_norm_grad_fused warp sums per column in float32 before the float64 block sum: few
 * enough that the float32 rounding stays far inside the float64 reference's tolerance.
 */
const LN_ROWS_PER_WARP = 32;

export function softmax(
  rt: CudaRuntime,
  x: Storage,
  out: Storage,
  rows: number,
  cols: number,
  inScale: number,
  outScale: number,
  log: boolean,
  causalRows: number,
): void {
  checkCount('softmax', 'x', x, rows * cols);
  checkCount('softmax', 'out', out, rows * cols);
  requireDType('softmax', 'x', x, 'f32');
  requireDType('softmax', 'out', out, 'f32');
  if (!Number.isInteger(causalRows) || causalRows < 0) throw new RangeError(`softmax: causalRows must be a non-negative integer, got ${causalRows}`);
  const args = [address(x, 'softmax'), address(out, 'softmax'), rows, cols, inScale, outScale, log ? 1 : 0, causalRows];
  const kinds = ['p', 'p', 'i', 'i', 'f', 'f', 'i', 'i'] as const;
  const k = warpWidth(cols, 32);
  if (k !== null) rt.launchWarpRows(rt.kernel(NN_MODULE, `softmax_warp_${k}`, kinds), rows, args);
  else rt.launchRows(rt.kernel(NN_MODULE, 'softmax_rows', kinds), rows, cols, args);
}

export function softmaxGrad(rt: CudaRuntime, y: Storage, gradOut: Storage, gradX: Storage, rows: number, cols: number, gradScale: number, log: boolean): void {
  for (const [name, s] of [['y', y], ['gradOut', gradOut], ['gradX', gradX]] as const) {
    checkCount('softmaxGrad', name, s, rows * cols);
    requireDType('softmaxGrad', name, s, 'f32');
  }
  const args = [address(y, 'softmaxGrad'), address(gradOut, 'softmaxGrad'), address(gradX, 'softmaxGrad'), rows, cols, gradScale, log ? 1 : 0];
  const kinds = ['p', 'p', 'p', 'i', 'i', 'f', 'i'] as const;
  const k = warpWidth(cols, 32);
  if (k !== null) rt.launchWarpRows(rt.kernel(NN_MODULE, `softmax_grad_warp_${k}`, kinds), rows, args);
  else rt.launchRows(rt.kernel(NN_MODULE, 'softmax_grad_rows', kinds), rows, cols, args);
}

export function layerNorm(rt: CudaRuntime, p: LayerNormParams): void {
  const op = 'layerNorm';
  checkLayerNormStorage(p);
  const size = p.rows * p.cols;
  checkCount(op, 'x', p.x, size);
  checkCount(op, 'out', p.out, size);
  checkCount(op, 'mean', p.mean, p.rows);
  checkCount(op, 'rstd', p.rstd, p.rows);
  if (p.gamma) checkCount(op, 'gamma', p.gamma, p.cols);
  if (p.beta) checkCount(op, 'beta', p.beta, p.cols);
  const sumOf = p.sumOf ?? null;
  if (sumOf) {
    checkCount(op, 'sumOf.a', sumOf.a, size);
    checkCount(op, 'sumOf.b', sumOf.b, size);
  }
  const kinds = ['p', 'p', 'p', 'p', 'p', 'p', 'i', 'i', 'd', 'p', 'p', 'f', 'f', 'i', 'i', 'i'] as const;
  const args = [
    address(p.x, op), optional(p.gamma, op), optional(p.beta, op), address(p.out, op), address(p.mean, op), address(p.rstd, op), p.rows, p.cols, p.eps,
    optional(sumOf?.a ?? null, op), optional(sumOf?.b ?? null, op), sumOf?.scaleA ?? 1, sumOf?.scaleB ?? 1, readFormatCode(sumOf?.readFormatA),
    storageFormatCode(p.out.dtype), sumOf ? storageFormatCode(sumOf.a.dtype) : 0,
  ];
  const k = warpWidth(p.cols, 32);
  // float4 access where every row (and gamma, beta) starts 16-byte aligned: the large BF16 reference step's 17 norms took 0.30 ms, not 0.42.
  const vector = p.cols % 4 === 0 && [p.x, p.out, ...(p.gamma ? [p.gamma] : []), ...(p.beta ? [p.beta] : []), ...(sumOf ? [sumOf.a, sumOf.b] : [])].every((s) => address(s, op) % 16 === 0);
  if (k !== null) rt.launchWarpRows(rt.kernel(NN_MODULE, vector ? `layer_norm_warp_v${Math.max(4, k)}` : `layer_norm_warp_${k}`, kinds), p.rows, args);
  else rt.launchRows(rt.kernel(NN_MODULE, 'layer_norm_rows', kinds), p.rows, p.cols, args);
}

export function layerNormGrad(rt: CudaRuntime, p: LayerNormGradParams): void {
  const op = 'layerNormGrad';
  checkLayerNormGradStorage(p);
  const { rows, cols } = p;
  const size = rows * cols;
  checkCount(op, 'x', p.x, size);
  checkCount(op, 'gradOut', p.gradOut, size);
  checkCount(op, 'gradX', p.gradX, size);
  checkCount(op, 'mean', p.mean, rows);
  checkCount(op, 'rstd', p.rstd, rows);
  for (const [name, s] of [['gamma', p.gamma], ['gradGamma', p.gradGamma], ['gradBeta', p.gradBeta]] as const) if (s) checkCount(op, name, s, cols);
  if (cols === 0) return;
  const params = p.gradGamma !== null || p.gradBeta !== null;
  const accumulateX = p.accumulateGradX ? 1 : 0;
  if (p.gradXAddend) checkCount(op, 'gradXAddend', p.gradXAddend, size);
  if (p.gradXCopy) checkCount(op, 'gradXCopy', p.gradXCopy.target, size);
  const copy = [optional(p.gradXCopy?.target ?? null, op), p.gradXCopy?.scale ?? 1] as const;
  const fmtG = readFormatCode(p.gradOutReadFormat);
  const gyIn = storageFormatCode(p.gradOut.dtype);
  const copy16 = p.gradXCopy16 ?? null;
  if (copy16) checkCount(op, 'gradXCopy16', copy16.target, size);
  const copy16Args = [optional(copy16?.target ?? null, op), copy16?.scale ?? 1, copy16 ? storageFormatCode(copy16.target.dtype) : 0] as const;
  // With accumulateGradX the kernels add the prior gradient read from here (gradX itself by default).
  const addend = p.gradXAddend ?? p.gradX;
  const k = warpWidth(cols, 32);
  let parts = 0;
  let scratch: Block | null = null;
  if (k !== null) {
    // One pass: gradX and the per-block gamma/beta partial sums from a single read of x and gy.
    const vector = cols % 4 === 0 && [p.x, p.gradOut, p.gradX, addend, ...(p.gamma ? [p.gamma] : []), ...(p.gradXCopy ? [p.gradXCopy.target] : []), ...(copy16 ? [copy16.target] : [])].every((s) => address(s, op) % 16 === 0);
    const kernel = vector ? `layer_norm_grad_fused_v${Math.max(4, k)}` : `layer_norm_grad_fused_s${k}`;
    // Blocks a multiprocessor holds: the kernels' __launch_bounds__ (registers allow one at 32 columns a lane).
    const tileRows = fusedTileRows(rows, rt.multiprocessors * (k >= 32 ? 1 : 2));
    parts = Math.ceil(rows / tileRows);
    if (params && parts > 0) scratch = rt.allocateScratch(2 * parts * cols * 8);
    const partialGamma = scratch ? scratch.address : 0;
    const partialBeta = scratch ? scratch.address + parts * cols * 8 : 0;
    if (parts > 0) {
      rt.launch(rt.kernel(NN_MODULE, kernel, ['p', 'p', 'p', 'p', 'p', 'p', 'p', 'p', 'p', 'i', 'i', 'i', 'd', 'i', 'p', 'f', 'i', 'i', 'p', 'f', 'i']), parts, 1, 32 * LN_WARPS, [
        address(p.x, op), optional(p.gamma, op), address(p.mean, op), address(p.rstd, op), address(p.gradOut, op), address(p.gradX, op),
        address(addend, op), partialGamma, partialBeta, rows, cols, tileRows, p.gradXScale, accumulateX, ...copy, fmtG, gyIn, ...copy16Args,
      ]);
    }
  } else {
    const kinds = ['p', 'p', 'p', 'p', 'p', 'p', 'p', 'i', 'i', 'd', 'i', 'p', 'f', 'i', 'i', 'p', 'f', 'i'] as const;
    rt.launchRows(rt.kernel(NN_MODULE, 'layer_norm_grad_rows', kinds), rows, cols, [
      address(p.x, op), optional(p.gamma, op), address(p.mean, op), address(p.rstd, op), address(p.gradOut, op), address(p.gradX, op),
      address(addend, op), rows, cols, p.gradXScale, accumulateX, ...copy, fmtG, gyIn, ...copy16Args,
    ]);
    if (params && rows > 0) {
      const chunkRows = Math.max(PARAM_CHUNK_ROWS, Math.ceil(rows / MAX_GRID_Y));
      parts = Math.ceil(rows / chunkRows);
      scratch = rt.allocateScratch(2 * parts * cols * 8);
      const partials = rt.kernel(NN_MODULE, 'layer_norm_param_partials', ['p', 'p', 'p', 'p', 'p', 'p', 'i', 'i', 'i', 'i', 'i']);
      rt.launch(partials, Math.ceil(cols / 32), parts, 1024, [
        address(p.x, op), address(p.mean, op), address(p.rstd, op), address(p.gradOut, op), scratch.address, scratch.address + parts * cols * 8,
        rows, cols, chunkRows, fmtG, gyIn,
      ]);
    }
  }
  if (!params) return;
  // No rows leave parts = 0: the finish pass then writes (or adds) zero sums.
  const finish = rt.kernel(NN_MODULE, 'layer_norm_param_finish', ['p', 'p', 'p', 'p', 'i', 'i', 'd', 'd', 'i']);
  rt.launch(finish, Math.ceil(cols / 8), 1, 1024, [
    scratch ? scratch.address : 0, scratch ? scratch.address + parts * cols * 8 : 0, optional(p.gradGamma, op), optional(p.gradBeta, op),
    parts, cols, p.gradGammaScale, p.gradBetaScale, p.accumulateParams ? 1 : 0,
  ]);
  if (scratch) rt.releaseScratch(scratch);
}

/**
 * Rows a layer_norm_grad_fused block covers: one block for each that fits on the device at once
 * (`resident`), a multiple of LN_WARPS so every warp gets as many rows, and at most
 * LN_ROWS_PER_WARP rows a warp.
 */
function fusedTileRows(rows: number, resident: number): number {
  const perBlock = Math.ceil(rows / resident);
  const rounded = Math.ceil(perBlock / LN_WARPS) * LN_WARPS;
  return Math.min(LN_WARPS * LN_ROWS_PER_WARP, Math.max(LN_WARPS, rounded));
}

export function gather(rt: CudaRuntime, table: Storage, ids: Storage, out: Storage, count: number, dim: number): void {
  requireDType('gather', 'ids', ids, 'i32');
  checkCount('gather', 'ids', ids, count);
  checkCount('gather', 'out', out, count * dim);
  const kernel = rt.kernel(NN_MODULE, 'gather_rows', ['p', 'p', 'p', 'i', 'i', 'i']);
  rt.launchLinear(kernel, count * dim, [address(table, 'gather'), address(ids, 'gather'), address(out, 'gather'), count, dim, Math.floor(table.size / dim)]);
}

export function scatterAdd(rt: CudaRuntime, gradOut: Storage, ids: Storage, gradTable: Storage, count: number, dim: number, scale: number): void {
  requireDType('scatterAdd', 'ids', ids, 'i32');
  checkCount('scatterAdd', 'ids', ids, count);
  checkCount('scatterAdd', 'gradOut', gradOut, count * dim);
  if (count === 0 || dim === 0) return;
  const tableRows = Math.floor(gradTable.size / dim);
  const args = [address(gradOut, 'scatterAdd'), address(ids, 'scatterAdd'), address(gradTable, 'scatterAdd'), count, dim, tableRows, scale];
  if (process.env.REPRO_CUDA_ATOMIC_SCATTER === '1') {
    rt.launchLinear(rt.kernel(NN_MODULE, 'scatter_add_atomic', ['p', 'p', 'p', 'i', 'i', 'i', 'f']), count * dim, args);
    return;
  }
  const columnBlocks = Math.ceil(dim / 32);
  if (columnBlocks > 65535) throw new RangeError(`scatterAdd: ${dim} columns need ${columnBlocks} column blocks, above the grid's 65535`);
  // SA_ROWS (32) table rows per block, one warp each: fewer blocks, each scanning every id.
  rt.launch(rt.kernel(NN_MODULE, 'scatter_add_ordered', ['p', 'p', 'p', 'i', 'i', 'i', 'd']), Math.max(1, Math.ceil(tableRows / 32)), columnBlocks, 32, args);
}

/** Threads per row of the cross-entropy kernels: a vocabulary-long row has work for 256 threads,
 * and smaller blocks keep more rows in flight than rowBlockSize's 1024. */
const CROSS_ENTROPY_BLOCK = 256;

export function crossEntropy(rt: CudaRuntime, p: CrossEntropyParams): void {
  const op = 'crossEntropy';
  checkCount(op, 'logits', p.logits, p.rows * p.vocab);
  checkCount(op, 'labels', p.labels, p.rows);
  requireDType(op, 'labels', p.labels, 'i32');
  checkCount(op, 'loss', p.loss, p.rows);
  checkCount(op, 'logSumExp', p.logSumExp, p.rows);
  if (p.mask) checkCount(op, 'mask', p.mask, p.rows);
  // A warp per row (four logits a load where rows are 16-byte aligned): the large BF16 reference
  // step's cross-entropy took 0.070 ms, not 0.105 with a block per row (its gradient 0.077, not 0.104).
  const vec = p.vocab % 4 === 0 && address(p.logits, op) % 16 === 0 ? 1 : 0;
  rt.launchWarpRows(rt.kernel(NN_MODULE, 'cross_entropy_warp', ['p', 'p', 'p', 'p', 'p', 'i', 'i', 'i', 'i']), p.rows, [
    address(p.logits, op), address(p.labels, op), optional(p.mask, op), address(p.loss, op), address(p.logSumExp, op), p.rows, p.vocab,
    storageFormatCode(p.logits.dtype), vec,
  ]);
}

export function crossEntropyGrad(rt: CudaRuntime, p: CrossEntropyGradParams): void {
  const op = 'crossEntropyGrad';
  checkCount(op, 'logits', p.logits, p.rows * p.vocab);
  checkCount(op, 'gradLogits', p.gradLogits, p.rows * p.vocab);
  checkCount(op, 'labels', p.labels, p.rows);
  requireDType(op, 'labels', p.labels, 'i32');
  checkCount(op, 'logSumExp', p.logSumExp, p.rows);
  checkCount(op, 'gradLoss', p.gradLoss, p.rows);
  if (p.mask) checkCount(op, 'mask', p.mask, p.rows);
  const kinds = ['p', 'p', 'p', 'p', 'p', 'p', 'i', 'i', 'd', 'i', 'i'] as const;
  const args = [
    address(p.logits, op), address(p.labels, op), optional(p.mask, op), address(p.logSumExp, op), address(p.gradLoss, op), address(p.gradLogits, op),
    p.rows, p.vocab, p.scale, storageFormatCode(p.logits.dtype), storageFormatCode(p.gradLogits.dtype),
  ];
  // Four elements a thread where every row is 16-byte aligned, else one.
  if (p.vocab % 4 === 0 && address(p.logits, op) % 16 === 0 && address(p.gradLogits, op) % 16 === 0) {
    rt.launchWarpRows(rt.kernel(NN_MODULE, 'cross_entropy_grad_warp', kinds), p.rows, args);
    return;
  }
  rt.launch(rt.kernel(NN_MODULE, 'cross_entropy_grad_rows', kinds), Math.min(p.rows, rt.multiprocessors * 16), 1, CROSS_ENTROPY_BLOCK, args);
}
