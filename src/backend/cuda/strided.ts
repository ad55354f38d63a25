/**
 * Host-side preparation of strided kernels: dimensions are collapsed (size-1 axes dropped,
 * neighbours merged where every view is contiguous across them) so most launches index one or two
 * dimensions, and every view is bounds-checked before a kernel may touch device memory.
 */
import type { Storage, StridedView } from '../backend.ts';
import { MAX_RANK, STRIDED_WORDS } from './kernels/prelude.ts';

export interface Collapsed {
  readonly shape: number[];
  /** strides[v][d] for view v. */
  readonly strides: number[][];
  readonly count: number;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
  return strides;
}

export function collapse(shape: readonly number[], viewStrides: readonly (readonly number[])[]): Collapsed {
  const count = shape.reduce((p, d) => p * d, 1);
  const dims: number[] = [];
  for (let d = 0; d < shape.length; d++) if (shape[d] !== 1) dims.push(d);
  const outShape: number[] = [];
  const outStrides: number[][] = viewStrides.map(() => []);
  for (const d of dims) {
    const last = outShape.length - 1;
    const extent = shape[d]!;
    const mergeable = last >= 0 && viewStrides.every((s, v) => outStrides[v]![last] === s[d]! * extent);
    if (mergeable) {
      outShape[last] = outShape[last]! * extent;
      viewStrides.forEach((s, v) => (outStrides[v]![last] = s[d]!));
    } else {
      outShape.push(extent);
      viewStrides.forEach((s, v) => outStrides[v]!.push(s[d]!));
    }
  }
  return { shape: outShape, strides: outStrides, count };
}

/** The kernel's Strided struct for the first three views. */
export function packStrided(c: Collapsed, op: string): Int32Array {
  if (c.shape.length > MAX_RANK) {
    throw new Error(`${op}: ${c.shape.length} dimensions remain after collapsing; the CUDA kernels handle at most ${MAX_RANK}`);
  }
  const words = new Int32Array(STRIDED_WORDS);
  words[0] = c.shape.length;
  c.shape.forEach((extent, d) => (words[1 + d] = extent));
  for (let v = 0; v < Math.min(3, c.strides.length); v++) {
    c.strides[v]!.forEach((stride, d) => (words[1 + MAX_RANK + v * MAX_RANK + d] = stride));
  }
  return words;
}

/** Throws when a view over `shape` reaches outside its storage. */
export function checkView(op: string, name: string, view: StridedView, shape: readonly number[]): void {
  if (shape.some((d) => d === 0)) return;
  let low = view.offset;
  let high = view.offset;
  shape.forEach((extent, d) => {
    const reach = (view.strides[d] ?? 0) * (extent - 1);
    if (reach < 0) low += reach;
    else high += reach;
  });
  if (!Number.isInteger(low) || low < 0 || high >= view.storage.size) {
    throw new RangeError(`${op}: ${name} view (offset ${view.offset}, strides [${view.strides.join(', ')}]) over shape [${shape.join(', ')}] reaches elements ${low}..${high} of a storage of ${view.storage.size}`);
  }
}

export function checkCount(op: string, name: string, storage: Storage, n: number, offset = 0): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${op}: ${name} count must be a non-negative integer, got ${n}`);
  if (offset + n > storage.size) throw new RangeError(`${op}: ${name} needs ${offset + n} elements, its storage has ${storage.size}`);
}

/**
 * Whether distinct indices of the view always land on distinct elements (sufficient test: sorted by
 * stride, each stride exceeds the reach of the smaller ones). Decides between a plain and an atomic
 * accumulation.
 */
export function isInjective(shape: readonly number[], strides: readonly number[]): boolean {
  const dims = shape.map((extent, d) => ({ extent, stride: Math.abs(strides[d]!) })).filter((x) => x.extent > 1);
  dims.sort((a, b) => a.stride - b.stride);
  let reach = 0;
  for (const { extent, stride } of dims) {
    if (stride <= reach) return false;
    reach += stride * (extent - 1);
  }
  return true;
}
