/** Host wrappers of the optimiser kernels. */
import type { AdamWMultiParams, AdamWParams, LambApplyParams, LambUpdateParams, SgdmParams, Storage } from '../backend.ts';
import type { Block } from './allocator.ts';
import { checkDriver } from './driver-api.ts';
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

/** A device-resident description of adamwMulti's tensors (the kernel's AdamWTensor array). */
interface AdamWTable {
  readonly block: Block;
  readonly count: number;
  readonly chunks: number;
  /** Used by a captured graph, whose replays read this address until it is disposed, which the
   * cache cannot see: such a table is kept for the backend's life rather than evicted. */
  pinned: boolean;
}

const TWO_32 = 4294967296;

/**
 * adamwMulti's device tables by the tensors they describe. The table is uploaded by a host copy,
 * which a graph capture does not allow, so the eager warm-up step builds it and the captured step
 * finds it here. A key covers everything the table holds, so a hit is always the right table.
 */
export class AdamWTables {
  private readonly tables = new Map<string, AdamWTable>();

  constructor(
    /** Unpinned tables kept; an optimiser needs one, a few cover tests and sweeps. */
    private readonly limit = 8,
  ) {}

  get size(): number {
    return this.tables.size;
  }

  lookup(rt: CudaRuntime, tensors: readonly TableTensor[]): AdamWTable {
    const key = tableKey(tensors);
    const found = this.tables.get(key);
    if (found) {
      // Most recently used last, so eviction takes the stalest.
      this.tables.delete(key);
      this.tables.set(key, found);
      if (rt.allocator.isCapturing) found.pinned = true;
      return found;
    }
    if (rt.allocator.isCapturing) {
      throw new Error(
        'adamwMulti: no device table for these tensors while a CUDA graph is being captured (uploading one is a host copy, ' +
          'which capture does not allow): run the same optimiser step once eagerly before capturing',
      );
    }
    const table = uploadTable(rt, tensors);
    this.tables.set(key, table);
    this.evict(rt);
    return table;
  }

  private evict(rt: CudaRuntime): void {
    let unpinned = 0;
    for (const table of this.tables.values()) if (!table.pinned) unpinned++;
    for (const [key, table] of this.tables) {
      if (unpinned <= this.limit) return;
      if (table.pinned) continue;
      // One stream: kernels queued earlier still read the block before anything reuses it.
      rt.releaseScratch(table.block);
      this.tables.delete(key);
      unpinned--;
    }
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

function uploadTable(rt: CudaRuntime, tensors: readonly TableTensor[]): AdamWTable {
  const owner = new Map<number, number>();
  tensors.forEach((t, i) => {
    for (const address of [t.param, t.grad, t.m, t.v]) {
      const j = owner.get(address);
      // Live storages at one address are one storage; the kernel runs the entries concurrently.
      if (j !== undefined && j !== i) throw new Error(`adamwMulti: tensors ${j} and ${i} share a storage`);
      owner.set(address, i);
    }
  });
  const buffer = new ArrayBuffer(tensors.length * ADAMW_TABLE_WORDS * 4);
  const u32 = new Uint32Array(buffer), i32 = new Int32Array(buffer), f64 = new Float64Array(buffer);
  let chunks = 0;
  tensors.forEach((t, index) => {
    const w = index * ADAMW_TABLE_WORDS;
    [t.param, t.grad, t.m, t.v].forEach((address, k) => {
      u32[w + 2 * k] = address % TWO_32;
      u32[w + 2 * k + 1] = Math.floor(address / TWO_32);
    });
    f64[w / 2 + 4] = t.lrScale;
    f64[w / 2 + 5] = t.weightDecay;
    i32[w + 12] = t.n;
    i32[w + 13] = [t.param, t.grad, t.m, t.v].every((a) => a % 16 === 0) ? 1 : 0;
    i32[w + 14] = chunks;
    chunks += Math.ceil(t.n / ADAMW_CHUNK);
  });
  if (chunks > 0x7fffffff) throw new RangeError(`adamwMulti: ${chunks} chunks exceed the kernel's 32-bit indexing`);
  const block = rt.allocateScratch(buffer.byteLength);
  checkDriver(rt.api, 'cuMemcpyHtoDAsync', rt.api.cuMemcpyHtoDAsync_v2(block.address, u32, buffer.byteLength, rt.stream));
  return { block, count: tensors.length, chunks, pinned: false };
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
