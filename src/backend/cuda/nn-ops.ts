/** Host wrappers of the row-wise and embedding kernels. */
import type { CrossEntropyGradParams, CrossEntropyParams, LayerNormGradParams, LayerNormParams, Storage } from '../backend.ts';
import { NN_MODULE } from './kernels/nn.ts';
import { asCuda, type CudaRuntime } from './runtime.ts';
import { checkCount } from './strided.ts';

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

export function softmax(rt: CudaRuntime, x: Storage, out: Storage, rows: number, cols: number, inScale: number, outScale: number, log: boolean): void {
  checkCount('softmax', 'x', x, rows * cols);
  checkCount('softmax', 'out', out, rows * cols);
  requireDType('softmax', 'x', x, 'f32');
  requireDType('softmax', 'out', out, 'f32');
  const kernel = rt.kernel(NN_MODULE, 'softmax_rows', ['p', 'p', 'i', 'i', 'f', 'f', 'i']);
  rt.launchRows(kernel, rows, cols, [address(x, 'softmax'), address(out, 'softmax'), rows, cols, inScale, outScale, log ? 1 : 0]);
}

export function softmaxGrad(rt: CudaRuntime, y: Storage, gradOut: Storage, gradX: Storage, rows: number, cols: number, gradScale: number, log: boolean): void {
  for (const [name, s] of [['y', y], ['gradOut', gradOut], ['gradX', gradX]] as const) {
    checkCount('softmaxGrad', name, s, rows * cols);
    requireDType('softmaxGrad', name, s, 'f32');
  }
  const kernel = rt.kernel(NN_MODULE, 'softmax_grad_rows', ['p', 'p', 'p', 'i', 'i', 'f', 'i']);
  rt.launchRows(kernel, rows, cols, [address(y, 'softmaxGrad'), address(gradOut, 'softmaxGrad'), address(gradX, 'softmaxGrad'), rows, cols, gradScale, log ? 1 : 0]);
}

export function layerNorm(rt: CudaRuntime, p: LayerNormParams): void {
  const op = 'layerNorm';
  const size = p.rows * p.cols;
  checkCount(op, 'x', p.x, size);
  checkCount(op, 'out', p.out, size);
  checkCount(op, 'mean', p.mean, p.rows);
  checkCount(op, 'rstd', p.rstd, p.rows);
  if (p.gamma) checkCount(op, 'gamma', p.gamma, p.cols);
  if (p.beta) checkCount(op, 'beta', p.beta, p.cols);
  const kernel = rt.kernel(NN_MODULE, 'layer_norm_rows', ['p', 'p', 'p', 'p', 'p', 'p', 'i', 'i', 'd']);
  rt.launchRows(kernel, p.rows, p.cols, [
    address(p.x, op), optional(p.gamma, op), optional(p.beta, op), address(p.out, op), address(p.mean, op), address(p.rstd, op), p.rows, p.cols, p.eps,
  ]);
}

export function layerNormGrad(rt: CudaRuntime, p: LayerNormGradParams): void {
  const op = 'layerNormGrad';
  const size = p.rows * p.cols;
  checkCount(op, 'x', p.x, size);
  checkCount(op, 'gradOut', p.gradOut, size);
  checkCount(op, 'gradX', p.gradX, size);
  checkCount(op, 'mean', p.mean, p.rows);
  checkCount(op, 'rstd', p.rstd, p.rows);
  for (const [name, s] of [['gamma', p.gamma], ['gradGamma', p.gradGamma], ['gradBeta', p.gradBeta]] as const) if (s) checkCount(op, name, s, p.cols);
  const rows = rt.kernel(NN_MODULE, 'layer_norm_grad_rows', ['p', 'p', 'p', 'p', 'p', 'p', 'i', 'i', 'd']);
  rt.launchRows(rows, p.rows, p.cols, [
    address(p.x, op), optional(p.gamma, op), address(p.mean, op), address(p.rstd, op), address(p.gradOut, op), address(p.gradX, op), p.rows, p.cols, p.gradXScale,
  ]);
  if (!p.gradGamma && !p.gradBeta) return;
  const columns = rt.kernel(NN_MODULE, 'layer_norm_param_grads', ['p', 'p', 'p', 'p', 'p', 'p', 'i', 'i', 'd', 'd']);
  if (p.cols === 0) return;
  rt.launch(columns, Math.ceil(p.cols / 32), 1, 1024, [
    address(p.x, op), address(p.mean, op), address(p.rstd, op), address(p.gradOut, op), optional(p.gradGamma, op), optional(p.gradBeta, op),
    p.rows, p.cols, p.gradGammaScale, p.gradBetaScale,
  ]);
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
  const kernel = rt.kernel(NN_MODULE, 'scatter_add_rows', ['p', 'p', 'p', 'i', 'i', 'i', 'f']);
  rt.launchLinear(kernel, count * dim, [
    address(gradOut, 'scatterAdd'), address(ids, 'scatterAdd'), address(gradTable, 'scatterAdd'), count, dim, Math.floor(gradTable.size / dim), scale,
  ]);
}

export function crossEntropy(rt: CudaRuntime, p: CrossEntropyParams): void {
  const op = 'crossEntropy';
  checkCount(op, 'logits', p.logits, p.rows * p.vocab);
  checkCount(op, 'labels', p.labels, p.rows);
  requireDType(op, 'labels', p.labels, 'i32');
  checkCount(op, 'loss', p.loss, p.rows);
  checkCount(op, 'logSumExp', p.logSumExp, p.rows);
  if (p.mask) checkCount(op, 'mask', p.mask, p.rows);
  const kernel = rt.kernel(NN_MODULE, 'cross_entropy_rows', ['p', 'p', 'p', 'p', 'p', 'i', 'i']);
  rt.launchRows(kernel, p.rows, p.vocab, [
    address(p.logits, op), address(p.labels, op), optional(p.mask, op), address(p.loss, op), address(p.logSumExp, op), p.rows, p.vocab,
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
  const kernel = rt.kernel(NN_MODULE, 'cross_entropy_grad_rows', ['p', 'p', 'p', 'p', 'p', 'p', 'i', 'i', 'd']);
  rt.launchRows(kernel, p.rows, p.vocab, [
    address(p.logits, op), address(p.labels, op), optional(p.mask, op), address(p.logSumExp, op), address(p.gradLoss, op), address(p.gradLogits, op),
    p.rows, p.vocab, p.scale,
  ]);
}
