import type { StridedView } from '../../backend/backend.ts';
import { contiguousStrides, formatShape, sameShape, type Tensor } from '../tensor.ts';
import { alias, empty } from './creation.ts';

/** NumPy broadcasting of two shapes; throws naming the op and both shapes. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`${op}: shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** A view of t read as `shape` (broadcast axes get stride 0). */
export function broadcastView(t: Tensor, shape: readonly number[]): StridedView {
  const own = contiguousStrides(t.shape);
  const strides = shape.map((d, i) => {
    const k = i - (shape.length - t.rank);
    if (k < 0) return 0;
    return t.shape[k] === 1 && d !== 1 ? 0 : own[k];
  });
  return { storage: t.storage, offset: 0, strides };
}

/**
 * Sums g (of a broadcast result shape) back down to `shape`, times scale. Returns a new tensor
 * (an alias when nothing needs summing and scale is 1), or writes into `into` when given.
 */
export function sumTo(g: Tensor, shape: readonly number[], scale = 1, into?: Tensor): Tensor {
  if (sameShape(g.shape, shape)) {
    if (scale === 1 && !into) return alias(g);
    const out = into ?? empty(shape, 'f32', g.backend);
    g.backend.unary('copy', g.storage, out.storage, g.size, 1, scale);
    return out;
  }
  const padded = g.shape.map((d, i) => {
    const k = i - (g.rank - shape.length);
    return k < 0 ? 1 : shape[k];
  });
  const out = into ?? empty(shape, 'f32', g.backend);
  g.backend.reduce('sum', g.storage, g.shape, out.storage, padded, scale);
  return out;
}
