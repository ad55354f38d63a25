import type { StridedView } from '../../backend/backend.ts';
import { record, SUNK, type GradSink } from '../autograd.ts';
import { contiguousStrides, formatShape, shapeSize, type Tensor } from '../tensor.ts';
import { alias, empty, zeros } from './creation.ts';

/** Same storage, new shape (no copy). One dimension may be -1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
  const resolved = shape.map((d) => (d === -1 ? x.size / known : d));
  if (shapeSize(resolved) !== x.size || resolved.some((d) => !Number.isInteger(d))) {
    throw new Error(`reshape: cannot view ${x.describe()} as ${formatShape(shape)}`);
  }
  const out = alias(x, resolved);
  out.gradPassesTo = x;
  return record(out, [x], (g) => [alias(g, x.shape)]);
}

/** Materialises a strided window of x as a new contiguous tensor; the backward pass scatters
 * (accumulating, so overlapping windows such as im2col are handled). */
export function asStrided(x: Tensor, shape: readonly number[], strides: readonly number[], offset = 0): Tensor {
  if (shape.length !== strides.length) throw new Error(`asStrided: shape ${formatShape(shape)} and strides of different rank`);
  const out = empty(shape, x.dtype, x.backend);
  const src: StridedView = { storage: x.storage, offset, strides };
  x.backend.copy(src, out.view(), shape, 1, false);
  return record(out, [x], (g, [sink]) => {
    const gx = zeroedTarget(x, sink);
    x.backend.copy(g.view(), { storage: gx.storage, offset, strides }, shape, 1, true);
    return [sink ? SUNK : gx];
  });
}

/** The sink when given (zero-filled unless it accumulates), else a new zero tensor shaped like x. */
function zeroedTarget(x: Tensor, sink: GradSink | null | undefined): Tensor {
  if (!sink) return zeros(x.shape, 'f32', x.backend);
  if (!sink.accumulate) x.backend.fill(sink.target.storage, 0, sink.target.size, 0);
  return sink.target;
}

export function permute(x: Tensor, order: readonly number[]): Tensor {
  if (order.length !== x.rank || [...order].sort((a, b) => a - b).some((v, i) => v !== i)) {
    throw new Error(`permute: order [${order.join(', ')}] does not fit ${x.describe()}`);
  }
  const strides = contiguousStrides(x.shape);
  const out = asStridedNoGrad(x, order.map((a) => x.shape[a]), order.map((a) => strides[a]));
  const inverse = order.map((_, i) => order.indexOf(i));
  return record(out, [x], (g, [sink]) => {
    if (!sink) return [permuteNoGrad(g, inverse)];
    const gStrides = contiguousStrides(g.shape);
    const src = { storage: g.storage, offset: 0, strides: inverse.map((a) => gStrides[a]) };
    x.backend.copy(src, sink.target.view(), x.shape, 1, sink.accumulate);
    return [SUNK];
  });
}

function asStridedNoGrad(x: Tensor, shape: readonly number[], strides: readonly number[], offset = 0): Tensor {
  const out = empty(shape, x.dtype, x.backend);
  x.backend.copy({ storage: x.storage, offset, strides }, out.view(), shape, 1, false);
  return out;
}

function permuteNoGrad(x: Tensor, order: readonly number[]): Tensor {
  const strides = contiguousStrides(x.shape);
  return asStridedNoGrad(x, order.map((a) => x.shape[a]), order.map((a) => strides[a]));
}

/** Swaps two axes (default: the last two). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const order = x.shape.map((_, i) => i);
  const ia = a < 0 ? a + x.rank : a;
  const ib = b < 0 ? b + x.rank : b;
  [order[ia], order[ib]] = [order[ib], order[ia]];
  return permute(x, order);
}

/** x[…, start:end, …] along one axis. */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const ax = axis < 0 ? axis + x.rank : axis;
  if (ax < 0 || ax >= x.rank || start < 0 || end > x.shape[ax] || start > end) {
    throw new Error(`slice: [${start}:${end}] on axis ${axis} out of range for ${x.describe()}`);
  }
  const strides = contiguousStrides(x.shape);
  const shape = x.shape.map((d, i) => (i === ax ? end - start : d));
  const offset = start * strides[ax];
  const out = asStridedNoGrad(x, shape, strides, offset);
  return record(out, [x], (g, [sink]) => {
    if (sink?.accumulate) {
      x.backend.copy(g.view(), { storage: sink.target.storage, offset, strides }, shape, 1, true);
      return [SUNK];
    }
    const gx = zeroedTarget(x, sink);
    x.backend.copy(g.view(), { storage: gx.storage, offset, strides }, shape, 1, false);
    return [sink ? SUNK : gx];
  });
}

/** Joins tensors along an axis. */
export function concat(parts: readonly Tensor[], axis: number): Tensor {
  if (parts.length === 0) throw new Error('concat: nothing to join');
  const first = parts[0];
  const ax = axis < 0 ? axis + first.rank : axis;
  for (const p of parts) {
    if (p.rank !== first.rank || p.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new Error(`concat: ${p.describe()} does not fit ${first.describe()} on axis ${axis}`);
    }
  }
  const shape = first.shape.map((d, i) => (i === ax ? parts.reduce((s, p) => s + p.shape[ax], 0) : d));
  const out = empty(shape, first.dtype, first.backend);
  const strides = contiguousStrides(shape);
  const offsets: number[] = [];
  let at = 0;
  for (const p of parts) {
    offsets.push(at * strides[ax]);
    first.backend.copy(p.view(), { storage: out.storage, offset: at * strides[ax], strides }, p.shape, 1, false);
    at += p.shape[ax];
  }
  return record(out, parts, (g) =>
    parts.map((p, i) => {
      if (!p.requiresGrad) return null;
      const gp = empty(p.shape, 'f32', p.backend);
      p.backend.copy({ storage: g.storage, offset: offsets[i], strides }, gp.view(), p.shape, 1, false);
      return gp;
    }),
  );
}

/** Zero padding: before[i]/after[i] elements on axis i (missing axes get none). */
export function pad(x: Tensor, before: readonly number[], after: readonly number[] = []): Tensor {
  const lo = x.shape.map((_, i) => before[i] ?? 0);
  const hi = x.shape.map((_, i) => after[i] ?? 0);
  const shape = x.shape.map((d, i) => d + lo[i] + hi[i]);
  const strides = contiguousStrides(shape);
  const offset = lo.reduce((s, p, i) => s + p * strides[i], 0);
  const out = zeros(shape, x.dtype, x.backend);
  x.backend.copy(x.view(), { storage: out.storage, offset, strides }, x.shape, 1, false);
  return record(out, [x], (g) => {
    const gx = empty(x.shape, 'f32', x.backend);
    x.backend.copy({ storage: g.storage, offset, strides }, gx.view(), x.shape, 1, false);
    return [gx];
  });
}

/**
 * x [B, L, ...rest] moved one place along axis 1, with `head` [...rest] (the same for every b) in
 * front: out[:, 0] = head, out[:, t] = x[:, t − 1], and x's last slice drops out. One copy of x
 * each way, where a slice and a concat would copy it twice forward and three times backward.
 */
export function shiftIn(x: Tensor, head: Tensor): Tensor {
  const [B, L, ...rest] = x.shape;
  if (x.rank < 2 || head.rank !== rest.length || head.shape.some((d, i) => d !== rest[i]) || L < 1) {
    throw new Error(`shiftIn: head ${head.describe()} does not fit ${x.describe()} (expected [${rest.join(', ')}] for [B, L, ...])`);
  }
  if (head.backend !== x.backend) throw new Error('shiftIn: operands live on different backends');
  const inner = shapeSize(rest);
  const strides = contiguousStrides(x.shape);
  const restStrides = strides.slice(2);
  const headShape = [B, 1, ...rest];
  const bodyShape = [B, L - 1, ...rest];
  const out = empty(x.shape, x.dtype, x.backend);
  x.backend.copy({ storage: head.storage, offset: 0, strides: [0, 0, ...restStrides] }, { storage: out.storage, offset: 0, strides }, headShape, 1, false);
  if (L > 1) x.backend.copy({ storage: x.storage, offset: 0, strides }, { storage: out.storage, offset: inner, strides }, bodyShape, 1, false);
  return record(out, [x, head], (g) => {
    let gx: Tensor | null = null;
    if (x.requiresGrad) {
      gx = empty(x.shape, 'f32', x.backend);
      if (L > 1) x.backend.copy({ storage: g.storage, offset: inner, strides }, { storage: gx.storage, offset: 0, strides }, bodyShape, 1, false);
      // x's last slice reached nothing: zero it from one zero row, broadcast over the batch.
      const zero = zeros(rest, 'f32', x.backend);
      x.backend.copy({ storage: zero.storage, offset: 0, strides: [0, 0, ...restStrides] }, { storage: gx.storage, offset: (L - 1) * inner, strides }, headShape, 1, false);
      zero.dispose();
    }
    let gHead: Tensor | null = null;
    if (head.requiresGrad) {
      const firsts = empty([B, inner], 'f32', x.backend);
      x.backend.copy({ storage: g.storage, offset: 0, strides: [strides[0], inner === 0 ? 0 : 1] }, firsts.view(), [B, inner], 1, false);
      gHead = empty(head.shape, 'f32', x.backend);
      x.backend.reduce('sum', firsts.storage, [B, inner], gHead.storage, [1, inner], 1);
      firsts.dispose();
    }
    return [gx, gHead];
  });
}

/** Repeats size-1 axes (materialised); the gradient sums them back. */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  const own = contiguousStrides(x.shape);
  const strides = shape.map((d, i) => {
    const k = i - (shape.length - x.rank);
    if (k < 0) return 0;
    if (x.shape[k] !== d && x.shape[k] !== 1) throw new Error(`broadcastTo: ${x.describe()} cannot become ${formatShape(shape)}`);
    return x.shape[k] === 1 && d !== 1 ? 0 : own[k];
  });
  const out = asStridedNoGrad(x, shape, strides);
  return record(out, [x], (g) => {
    const padded = shape.map((d, i) => {
      const k = i - (shape.length - x.rank);
      return k < 0 ? 1 : x.shape[k];
    });
    const gx = empty(x.shape, 'f32', x.backend);
    x.backend.reduce('sum', g.storage, g.shape, gx.storage, padded, 1);
    return [gx];
  });
}
