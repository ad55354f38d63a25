import { contiguousStrides } from '../strides.ts';
import type { BinaryKind, StridedView, UnaryKind } from '../backend.ts';
import { dataOf, forEachStrided } from './storage.ts';
import { gelu, geluGrad, geluTanh, geluTanhGrad, sigmoid } from './math.ts';

type Fn = (x: number) => number;

const forward: Record<UnaryKind, Fn> = {
  copy: (x) => x,
  abs: Math.abs,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  reciprocal: (x) => 1 / x,
  square: (x) => x * x,
  tanh: Math.tanh,
  sigmoid,
  relu: (x) => (x > 0 ? x : 0),
  gelu,
  geluTanh,
  sin: Math.sin,
  cos: Math.cos,
};

const derivative: Record<UnaryKind, Fn> = {
  copy: () => 1,
  abs: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0),
  exp: Math.exp,
  log: (x) => 1 / x,
  sqrt: (x) => 0.5 / Math.sqrt(x),
  rsqrt: (x) => -0.5 / (x * Math.sqrt(x)),
  reciprocal: (x) => -1 / (x * x),
  square: (x) => 2 * x,
  tanh: (x) => {
    const t = Math.tanh(x);
    return 1 - t * t;
  },
  sigmoid: (x) => {
    const s = sigmoid(x);
    return s * (1 - s);
  },
  relu: (x) => (x > 0 ? 1 : 0),
  gelu: geluGrad,
  geluTanh: geluTanhGrad,
  sin: Math.cos,
  cos: (x) => -Math.sin(x),
};

export function unary(kind: UnaryKind, x: Float32Array, out: Float32Array, n: number, inScale: number, outScale: number): void {
  if (kind === 'copy') {
    const s = inScale * outScale;
    if (s === 1) {
      if (x !== out) out.set(x.subarray(0, n));
    } else for (let i = 0; i < n; i++) out[i] = s * x[i];
    return;
  }
  if (kind === 'relu') {
    // +(v > 0) compiles without a branch; a data-dependent branch mispredicts half the time.
    for (let i = 0; i < n; i++) {
      const v = inScale * x[i];
      out[i] = outScale * v * +(v > 0);
    }
    return;
  }
  const f = forward[kind];
  for (let i = 0; i < n; i++) out[i] = outScale * f(inScale * x[i]);
}

export function unaryGrad(
  kind: UnaryKind,
  x: Float32Array,
  gradOut: Float32Array,
  gradX: Float32Array,
  n: number,
  inScale: number,
  gradScale: number,
): void {
  const s = gradScale * inScale;
  // The common kinds get their own loops: a function call per element costs more than the math.
  switch (kind) {
    case 'copy':
      for (let i = 0; i < n; i++) gradX[i] = s * gradOut[i];
      return;
    case 'relu':
      for (let i = 0; i < n; i++) gradX[i] = s * gradOut[i] * +(inScale * x[i] > 0);
      return;
    case 'square':
      for (let i = 0; i < n; i++) gradX[i] = 2 * s * inScale * x[i] * gradOut[i];
      return;
    default: {
      const df = derivative[kind];
      for (let i = 0; i < n; i++) gradX[i] = s * df(inScale * x[i]) * gradOut[i];
    }
  }
}

function combine(kind: BinaryKind, scaleA: number, scaleB: number): (a: number, b: number) => number {
  switch (kind) {
    case 'add':
      return (a, b) => scaleA * a + scaleB * b;
    case 'mul': {
      const s = scaleA * scaleB;
      return (a, b) => s * a * b;
    }
    case 'div': {
      const s = scaleA / scaleB;
      return (a, b) => (s * a) / b;
    }
    case 'max':
      return (a, b) => Math.max(scaleA * a, scaleB * b);
    case 'min':
      return (a, b) => Math.min(scaleA * a, scaleB * b);
    case 'eq':
      return (a, b) => (scaleA * a === scaleB * b ? 1 : 0);
    case 'gt':
      return (a, b) => (scaleA * a > scaleB * b ? 1 : 0);
    case 'ge':
      return (a, b) => (scaleA * a >= scaleB * b ? 1 : 0);
  }
}

function isContiguous(view: StridedView, shape: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && view.strides[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

/** out[io..] = op(a[ia..], b[ib..]) over `count` elements with element strides sa and sb. */
function binaryRun(
  kind: BinaryKind,
  ad: Float32Array | Int32Array,
  ia: number,
  sa: number,
  bd: Float32Array | Int32Array,
  ib: number,
  sb: number,
  out: Float32Array,
  io: number,
  count: number,
  scaleA: number,
  scaleB: number,
): void {
  const end = io + count;
  switch (kind) {
    case 'add':
      if (sa === 1 && sb === 1) for (; io < end; io++, ia++, ib++) out[io] = scaleA * ad[ia] + scaleB * bd[ib];
      else for (; io < end; io++, ia += sa, ib += sb) out[io] = scaleA * ad[ia] + scaleB * bd[ib];
      return;
    case 'mul': {
      const k = scaleA * scaleB;
      if (sa === 1 && sb === 1) for (; io < end; io++, ia++, ib++) out[io] = k * ad[ia] * bd[ib];
      else for (; io < end; io++, ia += sa, ib += sb) out[io] = k * ad[ia] * bd[ib];
      return;
    }
    default: {
      const f = combine(kind, scaleA, scaleB);
      for (; io < end; io++, ia += sa, ib += sb) out[io] = f(ad[ia], bd[ib]);
    }
  }
}

export function binary(
  kind: BinaryKind,
  a: StridedView,
  b: StridedView,
  outData: Float32Array,
  shape: readonly number[],
  scaleA: number,
  scaleB: number,
): void {
  const ad = dataOf(a.storage);
  const bd = dataOf(b.storage);
  if (isContiguous(a, shape) && isContiguous(b, shape)) {
    const n = shape.reduce((p, d) => p * d, 1);
    binaryRun(kind, ad, a.offset, 1, bd, b.offset, 1, outData, 0, n, scaleA, scaleB);
    return;
  }
  const out: StridedView = { storage: a.storage, offset: 0, strides: contiguousStrides(shape) };
  forEachStrided(shape, [a, b, out], (off, st, count) => {
    binaryRun(kind, ad, off[0], st[0], bd, off[1], st[1], outData, off[2], count, scaleA, scaleB);
  });
}

export function where(cond: StridedView, a: StridedView, b: StridedView, outData: Float32Array, shape: readonly number[]): void {
  const cd = dataOf(cond.storage);
  const ad = dataOf(a.storage);
  const bd = dataOf(b.storage);
  const out: StridedView = { storage: a.storage, offset: 0, strides: contiguousStrides(shape) };
  forEachStrided(shape, [cond, a, b, out], (off, st, count) => {
    let ic = off[0], ia = off[1], ib = off[2], io = off[3];
    for (let i = 0; i < count; i++, ic += st[0], ia += st[1], ib += st[2], io++) outData[io] = cd[ic] !== 0 ? ad[ia] : bd[ib];
  });
}

export function copy(src: StridedView, dst: StridedView, shape: readonly number[], scale: number, accumulate: boolean): void {
  const sd = dataOf(src.storage);
  const dd = dataOf(dst.storage);
  forEachStrided(shape, [src, dst], (off, st, count) => {
    let is = off[0], id = off[1];
    const ss = st[0], sdst = st[1];
    if (accumulate) for (let i = 0; i < count; i++, is += ss, id += sdst) dd[id] += scale * sd[is];
    else if (scale === 1) for (let i = 0; i < count; i++, is += ss, id += sdst) dd[id] = sd[is];
    else for (let i = 0; i < count; i++, is += ss, id += sdst) dd[id] = scale * sd[is];
  });
}

export { contiguousStrides };
