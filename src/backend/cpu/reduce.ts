import type { ReduceKind } from '../backend.ts';
import { contiguousStrides } from './elementwise.ts';

/**
 * Reduces contiguous x (xShape) into out (outShape: same rank, 1 on each reduced axis).
 * Accumulates in float64, as a reference should.
 */
export function reduce(
  kind: ReduceKind,
  x: Float32Array,
  xShape: readonly number[],
  out: Float32Array,
  outShape: readonly number[],
  scale: number,
): void {
  const rank = xShape.length;
  const outSize = outShape.reduce((p, d) => p * d, 1);
  const acc = new Float64Array(outSize);
  const initial = kind === 'max' ? -Infinity : kind === 'min' ? Infinity : 0;
  acc.fill(initial);
  const total = xShape.reduce((p, d) => p * d, 1);
  if (total === 0) {
    for (let i = 0; i < outSize; i++) out[i] = scale * acc[i];
    return;
  }
  // Collapse to [outer, reduced, inner] when the reduced axes are one contiguous block.
  const reducedAxes: number[] = [];
  for (let d = 0; d < rank; d++) if (outShape[d] !== xShape[d]) reducedAxes.push(d);
  const outStrides = contiguousStrides(outShape);
  const isBlock = reducedAxes.length > 0 && reducedAxes[reducedAxes.length - 1] - reducedAxes[0] === reducedAxes.length - 1;
  if (isBlock) {
    const first = reducedAxes[0];
    const lastAxis = reducedAxes[reducedAxes.length - 1];
    let outer = 1, mid = 1, inner = 1;
    for (let d = 0; d < first; d++) outer *= xShape[d];
    for (let d = first; d <= lastAxis; d++) mid *= xShape[d];
    for (let d = lastAxis + 1; d < rank; d++) inner *= xShape[d];
    for (let o = 0; o < outer; o++) {
      for (let m = 0; m < mid; m++) {
        const xBase = (o * mid + m) * inner;
        const oBase = o * inner;
        accumulateRow(kind, x, xBase, acc, oBase, inner);
      }
    }
  } else if (reducedAxes.length === 0) {
    for (let i = 0; i < total; i++) acc[i] = kind === 'sumSquares' ? x[i] * x[i] : x[i];
  } else {
    const index = new Int32Array(rank);
    for (let i = 0; i < total; i++) {
      let o = 0;
      for (let d = 0; d < rank; d++) if (outShape[d] !== 1) o += index[d] * outStrides[d];
      accumulateRow(kind, x, i, acc, o, 1);
      for (let d = rank - 1; d >= 0; d--) {
        if (++index[d] < xShape[d]) break;
        index[d] = 0;
      }
    }
  }
  for (let i = 0; i < outSize; i++) out[i] = scale * acc[i];
}

function accumulateRow(kind: ReduceKind, x: Float32Array, xBase: number, acc: Float64Array, oBase: number, n: number): void {
  switch (kind) {
    case 'sum':
      for (let i = 0; i < n; i++) acc[oBase + i] += x[xBase + i];
      return;
    case 'sumSquares':
      for (let i = 0; i < n; i++) acc[oBase + i] += x[xBase + i] * x[xBase + i];
      return;
    case 'max':
      for (let i = 0; i < n; i++) {
        const v = x[xBase + i];
        if (v > acc[oBase + i] || Number.isNaN(v)) acc[oBase + i] = v;
      }
      return;
    case 'min':
      for (let i = 0; i < n; i++) {
        const v = x[xBase + i];
        if (v < acc[oBase + i] || Number.isNaN(v)) acc[oBase + i] = v;
      }
      return;
  }
}
