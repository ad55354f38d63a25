/** Host wrappers of the optimiser kernels. */
import type { AdamWMultiParams, AdamWParams, LambApplyParams, LambUpdateParams, SgdmParams, Storage } from '../backend.ts';
import { checkDistinctStorages, DeviceTables, writeAddress, type DeviceTable, type TableImage } from './device-tables.ts';
import { ADAMW_CHUNK, ADAMW_TABLE_WORDS, OPTIM_MODULE } from './kernels/optim.ts';
import { asCuda, type CudaRuntime } from './runtime.ts';
import { checkCount } from './strided.ts';

function vectors(op: string, n: number, named: Record<string, Storage>): Record<string, number> {
  const addresses: Record<string, number> = {};
  for (const [name, storage] of Object.entries(named)) {
    checkCount(op, name, storage, n);
    if (storage.dtype !== 'f32') throw new TypeError(`${op}: ${name} must be float32 storage`);
    addresses[name] = asCuda(storage, op).address;
  }
  return addresses;
}

function stepAddress(op: string, step: Storage): number {
  if (step.dtype !== 'i32' || step.size < 1) throw new TypeError(`${op}: step must be a 1-element int32 storage`);
  return asCuda(step, op).address;
}

export function adamw(rt: CudaRuntime, p: AdamWParams): void {
  const v = vectors('adamw', p.n, { param: p.param, grad: p.grad, m: p.m, v: p.v });
  const kernel = rt.kernel(OPTIM_MODULE, 'adamw', ['p', 'p', 'p', 'p', 'i', 'p', 'd', 'd', 'd', 'd', 'd', 'd', 'd', 'd', 'i']);
  const aligned = [v.param!, v.grad!, v.m!, v.v!].every((a) => a % 16 === 0) ? 1 : 0;
  rt.launchLinear(kernel, Math.ceil(p.n / 4), [
    v.param!, v.grad!, v.m!, v.v!, p.n, stepAddress('adamw', p.step), p.lr, p.lrDecay, p.lrScale, p.beta1, p.beta2, p.eps, p.weightDecay, p.gradScale,
    aligned,
  ]);
}

/** adamwMulti's device tables by the tensors they describe (see DeviceTables). */
export class AdamWTables {
  private readonly tables: DeviceTables;

  constructor(limit = 8) {
    this.tables = new DeviceTables('adamwMulti', limit);
  }

  get size(): number {
    return this.tables.size;
  }

  lookup(rt: CudaRuntime, tensors: readonly TableTensor[]): DeviceTable {
    return this.tables.lookup(rt, tableKey(tensors), () => tableImage(tensors));
  }
}

interface TableTensor {
  readonly param: number;
  readonly grad: number;
  readonly m: number;
  readonly v: number;
  readonly n: number;
  readonly lrScale: number;
  readonly weightDecay: number;
}

function tableKey(tensors: readonly TableTensor[]): string {
  const parts: number[] = [];
  for (const t of tensors) parts.push(t.param, t.grad, t.m, t.v, t.n, t.lrScale, t.weightDecay);
  return parts.join(',');
}

function tableImage(tensors: readonly TableTensor[]): TableImage {
  checkDistinctStorages('adamwMulti', tensors.map((t) => [t.param, t.grad, t.m, t.v]));
  const buffer = new ArrayBuffer(tensors.length * ADAMW_TABLE_WORDS * 4);
  const u32 = new Uint32Array(buffer), i32 = new Int32Array(buffer), f64 = new Float64Array(buffer);
  let chunks = 0;
  tensors.forEach((t, index) => {
    const w = index * ADAMW_TABLE_WORDS;
    [t.param, t.grad, t.m, t.v].forEach((address, k) => writeAddress(u32, w + 2 * k, address));
    f64[w / 2 + 4] = t.lrScale;
    f64[w / 2 + 5] = t.weightDecay;
    i32[w + 12] = t.n;
    i32[w + 13] = [t.param, t.grad, t.m, t.v].every((a) => a % 16 === 0) ? 1 : 0;
    i32[w + 14] = chunks;
    chunks += Math.ceil(t.n / ADAMW_CHUNK);
  });
  return { buffer, count: tensors.length, chunks };
}

/** adamw on every tensor in one launch, through a cached device table of the tensors. */
export function adamwMulti(rt: CudaRuntime, tables: AdamWTables, p: AdamWMultiParams): void {
  const step = stepAddress('adamwMulti', p.step);
  const described: TableTensor[] = [];
  p.tensors.forEach((t, i) => {
    const named = { param: t.param, grad: t.grad, m: t.m, v: t.v };
    for (const [name, storage] of Object.entries(named)) {
      checkCount('adamwMulti', `tensors[${i}].${name}`, storage, t.n);
      if (storage.dtype !== 'f32') throw new TypeError(`adamwMulti: tensors[${i}].${name} must be float32 storage`);
    }
    const param = asCuda(t.param, 'adamwMulti').address, grad = asCuda(t.grad, 'adamwMulti').address;
    const m = asCuda(t.m, 'adamwMulti').address, v = asCuda(t.v, 'adamwMulti').address;
    // Empty tensors have no chunks; leaving them out keeps the table's chunk starts increasing.
    if (t.n === 0) return;
    described.push({
      param,
      grad,
      m,
      v,
      n: t.n,
      lrScale: t.lrScale,
      weightDecay: t.weightDecay,
    });
  });
  if (described.length === 0) return;
  const table = tables.lookup(rt, described);
  const kernel = rt.kernel(OPTIM_MODULE, 'adamw_multi', ['p', 'i', 'i', 'p', 'd', 'd', 'd', 'd', 'd', 'd']);
  rt.launch(kernel, Math.min(table.chunks, rt.multiprocessors * 16), 1, 256, [
    table.block.address, table.count, table.chunks, step, p.lr, p.lrDecay, p.beta1, p.beta2, p.eps, p.gradScale,
  ]);
}

export function sgdm(rt: CudaRuntime, p: SgdmParams): void {
  const v = vectors('sgdm', p.n, { param: p.param, grad: p.grad, momentum: p.momentum });
  const kernel = rt.kernel(OPTIM_MODULE, 'sgdm', ['p', 'p', 'p', 'i', 'p', 'd', 'd', 'd', 'd', 'd', 'd']);
  rt.launchLinear(kernel, p.n, [
    v.param!, v.grad!, v.momentum!, p.n, stepAddress('sgdm', p.step), p.lr, p.lrDecay, p.lrScale, p.mu, p.weightDecay, p.gradScale,
  ]);
}

export function lambUpdate(rt: CudaRuntime, p: LambUpdateParams): void {
  const v = vectors('lambUpdate', p.n, { param: p.param, grad: p.grad, m: p.m, v: p.v, update: p.update });
  const kernel = rt.kernel(OPTIM_MODULE, 'lamb_update', ['p', 'p', 'p', 'p', 'p', 'i', 'p', 'd', 'd', 'd', 'd', 'd']);
  rt.launchLinear(kernel, p.n, [
    v.param!, v.grad!, v.m!, v.v!, v.update!, p.n, stepAddress('lambUpdate', p.step), p.beta1, p.beta2, p.eps, p.weightDecay, p.gradScale,
  ]);
}

export function lambApply(rt: CudaRuntime, p: LambApplyParams): void {
  const v = vectors('lambApply', p.n, { param: p.param, update: p.update });
  const norms = vectors('lambApply', 1, { paramNormSq: p.paramNormSq, updateNormSq: p.updateNormSq });
  const kernel = rt.kernel(OPTIM_MODULE, 'lamb_apply', ['p', 'p', 'p', 'p', 'i', 'p', 'd', 'd', 'd', 'i']);
  rt.launchLinear(kernel, p.n, [
    v.param!, v.update!, norms.paramNormSq!, norms.updateNormSq!, p.n, stepAddress('lambApply', p.step), p.lr, p.warmupSteps, p.totalSteps,
    p.useTrustRatio ? 1 : 0,
  ]);
}
