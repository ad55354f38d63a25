import { isFormat16, type DType, type Storage, type StridedView } from '../backend.ts';
import { roundTo16Bits } from './quantise.ts';

/** CPU storage: a typed array owned by the backend (16-bit storage holds its values as float32). */
export class CpuStorage implements Storage {
  readonly data: Float32Array | Int32Array;
  constructor(
    readonly size: number,
    readonly dtype: DType,
  ) {
    this.data = dtype === 'i32' ? new Int32Array(size) : new Float32Array(size);
  }
}

export function dataOf(storage: Storage): Float32Array | Int32Array {
  if (!(storage instanceof CpuStorage)) throw new Error('CPU kernel received storage of another backend');
  return storage.data;
}

export function f32(storage: Storage): Float32Array {
  const data = dataOf(storage);
  if (storage.dtype !== 'f32' || !(data instanceof Float32Array)) throw new Error(`CPU kernel expected float32 storage, got ${storage.dtype}`);
  return data;
}

/** The values of float32 or 16-bit storage (kernels that accept both, such as GEMM operands). */
export function floats(storage: Storage): Float32Array {
  const data = dataOf(storage);
  if (storage.dtype === 'i32' || !(data instanceof Float32Array)) throw new Error('CPU kernel expected float32 or 16-bit storage, got int32');
  return data;
}

/**
 * After a kernel has written float32 values into [start, end) of storage: 16-bit storage keeps
 * them rounded to its format (nearest-even, overflow to infinity), as the CUDA backend's 2-byte
 * stores do; float32 and int32 storage are left as written.
 */
export function roundStored(storage: Storage, start = 0, end = storage.size): void {
  if (!isFormat16(storage.dtype)) return;
  roundTo16Bits(floats(storage).subarray(start, end), storage.dtype);
}

export function i32(storage: Storage): Int32Array {
  const data = dataOf(storage);
  if (!(data instanceof Int32Array)) throw new Error('CPU kernel expected int32 storage');
  return data;
}

/**
 * Calls body(offsets…) for every index of `shape`, in row-major order, handing it the element
 * offset of each view. The last axis is walked in a tight inner loop.
 */
export function forEachStrided(
  shape: readonly number[],
  views: readonly StridedView[],
  inner: (offsets: Int32Array, innerStrides: Int32Array, count: number) => void,
): void {
  const rank = shape.length;
  const nv = views.length;
  const offsets = new Int32Array(nv);
  const innerStrides = new Int32Array(nv);
  if (rank === 0) {
    for (let v = 0; v < nv; v++) offsets[v] = views[v].offset;
    inner(offsets, innerStrides, 1);
    return;
  }
  for (const d of shape) if (d === 0) return;
  const last = shape[rank - 1];
  for (let v = 0; v < nv; v++) innerStrides[v] = views[v].strides[rank - 1];
  const counter = new Int32Array(Math.max(rank - 1, 0));
  const base = new Float64Array(nv);
  for (let v = 0; v < nv; v++) base[v] = views[v].offset;
  for (;;) {
    for (let v = 0; v < nv; v++) offsets[v] = base[v];
    inner(offsets, innerStrides, last);
    // advance the outer counter (odometer) and the base offsets with it
    let axis = rank - 2;
    while (axis >= 0) {
      counter[axis]++;
      for (let v = 0; v < nv; v++) base[v] += views[v].strides[axis];
      if (counter[axis] < shape[axis]) break;
      for (let v = 0; v < nv; v++) base[v] -= views[v].strides[axis] * shape[axis];
      counter[axis] = 0;
      axis--;
    }
    if (axis < 0) return;
  }
}
