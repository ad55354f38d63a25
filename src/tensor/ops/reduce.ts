import { record } from '../autograd.ts';
import { formatShape, type Tensor } from '../tensor.ts';
import { broadcastView } from './broadcast.ts';
import { alias, empty } from './creation.ts';

function normaliseAxes(op: string, x: Tensor, axes?: number | readonly number[]): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = typeof axes === 'number' ? [axes] : [...axes];
  return list.map((a) => {
    const axis = a < 0 ? a + x.rank : a;
    if (axis < 0 || axis >= x.rank) throw new Error(`${op}: axis ${a} out of range for shape ${formatShape(x.shape)}`);
    return axis;
  });
}

function reducedShapes(x: Tensor, axes: number[], keepDims: boolean): { kept: number[]; out: number[] } {
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = keepDims ? kept : x.shape.filter((_, i) => !axes.includes(i));
  return { kept, out };
}

/** Expands g (reduced shape, kept dims) back to x's shape, times scale. */
function expandTo(g: Tensor, keptShape: number[], shape: readonly number[], scale: number): Tensor {
  const out = empty(shape, 'f32', g.backend);
  const gv = broadcastView(alias(g, keptShape), shape);
  g.backend.copy(gv, { storage: out.storage, offset: 0, strides: out.view().strides }, shape, scale, false);
  return out;
}

export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false, scale = 1): Tensor {
  const list = normaliseAxes('sum', x, axes);
  const { kept, out: outShape } = reducedShapes(x, list, keepDims);
  const out = empty(outShape, 'f32', x.backend);
  x.backend.reduce('sum', x.storage, x.shape, out.storage, kept, scale);
  return record(out, [x], (g) => [expandTo(g, kept, x.shape, scale)]);
}

export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const list = normaliseAxes('mean', x, axes);
  const count = list.reduce((p, a) => p * x.shape[a], 1);
  return sum(x, list, keepDims, 1 / count);
}

/** Maximum over axes; the gradient is shared equally between tied maxima. */
export function max(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const list = normaliseAxes('max', x, axes);
  const { kept, out: outShape } = reducedShapes(x, list, keepDims);
  const out = empty(outShape, 'f32', x.backend);
  x.backend.reduce('max', x.storage, x.shape, out.storage, kept, 1);
  return record(out, [x], (g) => {
    const b = x.backend;
    const isMax = empty(x.shape, 'f32', b);
    b.binary('eq', x.view(), broadcastView(alias(out, kept), x.shape), isMax.storage, x.shape, 1, 1);
    const ties = empty(kept, 'f32', b);
    b.reduce('sum', isMax.storage, x.shape, ties.storage, kept, 1);
    const share = empty(kept, 'f32', b);
    b.binary('div', alias(g, kept).view(), ties.view(), share.storage, kept, 1, 1);
    const gx = empty(x.shape, 'f32', b);
    b.binary('mul', isMax.view(), broadcastView(share, x.shape), gx.storage, x.shape, 1, 1);
    return [gx];
  });
}

/** Sum of squares over everything (no gradient; for norms and diagnostics). */
export function sumSquares(x: Tensor): Tensor {
  const out = empty([], 'f32', x.backend);
  x.backend.reduce('sumSquares', x.storage, x.shape, out.storage, x.shape.map(() => 1), 1);
  return out;
}
