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

export { contiguousStrides } from '../strides.ts';

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

/**
 * Multiply-shift replacement of division by `divisor` for dividends below 2^31 (the kernels'
 * index range): q = umulhi(n, magic) >> shift, with magic = ceil(2^(31+L)/d), L = ceil(log2 d).
 * magic 0 stands for d = 1.
 */
export function divisionMagic(divisor: number): { magic: number; shift: number } {
  if (!Number.isInteger(divisor) || divisor < 1 || divisor > 0x7fffffff) throw new RangeError(`divisionMagic: divisor ${divisor} out of range`);
  if (divisor === 1) return { magic: 0, shift: 0 };
  const log2 = Math.ceil(Math.log2(divisor));
  // Math.log2 may round at exact powers of two: settle L so that 2^(L-1) < d <= 2^L.
  const l = 2 ** log2 >= divisor && 2 ** (log2 - 1) < divisor ? log2 : 2 ** log2 < divisor ? log2 + 1 : log2 - 1;
  const p = 31n + BigInt(l);
  const d = BigInt(divisor);
  const magic = ((1n << p) + d - 1n) / d;
  return { magic: Number(magic), shift: l - 1 };
}

const magicCache = new Map<number, { magic: number; shift: number }>();
function cachedMagic(divisor: number): { magic: number; shift: number } {
  let m = magicCache.get(divisor);
  if (!m) {
    m = divisionMagic(divisor);
    magicCache.set(divisor, m);
  }
  return m;
}

/** The kernel's Strided struct for the first three views. */
export function packStrided(c: Collapsed, op: string): Int32Array {
  if (c.shape.length > MAX_RANK) {
    throw new Error(`${op}: ${c.shape.length} dimensions remain after collapsing; the CUDA kernels handle at most ${MAX_RANK}`);
  }
  const words = new Int32Array(STRIDED_WORDS);
  words[0] = c.shape.length;
  c.shape.forEach((extent, d) => {
    const { magic, shift } = cachedMagic(extent);
    words[1 + d] = extent;
    words[1 + MAX_RANK + d] = magic | 0;
    words[1 + 2 * MAX_RANK + d] = shift;
  });
  for (let v = 0; v < Math.min(3, c.strides.length); v++) {
    c.strides[v]!.forEach((stride, d) => (words[1 + 3 * MAX_RANK + v * MAX_RANK + d] = stride));
  }
  return words;
}

export interface Vectorised {
  /** The index space in groups of four along the innermost axis (inner stride 4 or 0 per view). */
  readonly collapsed: Collapsed;
  /** Bit v set: view v is read or written as float4; clear: its innermost stride is 0 (one value repeated). */
  readonly vectorMask: number;
}

/**
 * The index space regrouped by fours along the innermost axis, when every view either steps by 1
 * there (with 16-byte aligned groups: base address and other strides multiples of four) or
 * repeats one value (stride 0). `mustVector` lists views that may not repeat (destinations).
 * Null when the shape does not allow it.
 */
export function vectorise(c: Collapsed, addresses: readonly number[], mustVector: readonly number[]): Vectorised | null {
  const rank = c.shape.length;
  if (rank === 0) return null;
  const inner = c.shape[rank - 1]!;
  if (inner % 4 !== 0) return null;
  let vectorMask = 0;
  for (let v = 0; v < c.strides.length; v++) {
    const strides = c.strides[v]!;
    const innerStride = strides[rank - 1]!;
    if (innerStride === 1) {
      if (addresses[v]! % 16 !== 0) return null;
      for (let d = 0; d < rank - 1; d++) if (strides[d]! % 4 !== 0) return null;
      vectorMask |= 1 << v;
    } else if (innerStride !== 0 || mustVector.includes(v)) return null;
  }
  const shape = [...c.shape];
  shape[rank - 1] = inner / 4;
  const strides = c.strides.map((s) => s.map((stride, d) => (d === rank - 1 ? stride * 4 : stride)));
  return { collapsed: { shape, strides, count: c.count / 4 }, vectorMask };
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
