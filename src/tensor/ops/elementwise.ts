import type { BinaryKind, Format16, UnaryKind } from '../../backend/backend.ts';
export type { Format16 } from '../../backend/backend.ts';
import { gradientDType, record, SUNK, type GradSink } from '../autograd.ts';
import { STORAGE16_UNARY_KINDS } from '../../backend/unary-rules.ts';
import { sameShape, type Tensor } from '../tensor.ts';
import { broadcastShapes, broadcastView, sumTo } from './broadcast.ts';
import { alias, empty, full } from './creation.ts';

/** Forward and backward multipliers of an op's output. `gradScale` replaces `scale` in the backward
 * pass (unit scaling); leaving it out gives the true gradient. */
export interface OutputScale {
  scale?: number;
  gradScale?: number;
}

type Operand = Tensor | number;

function asTensor(v: Operand, like: Tensor): Tensor {
  return typeof v === 'number' ? full([], v, 'f32', like.backend) : v;
}

function checkSameBackend(op: string, a: Tensor, b: Tensor): void {
  if (a.backend !== b.backend) throw new Error(`${op}: operands live on different backends (${a.backend.name}, ${b.backend.name})`);
}

function binaryKernel(kind: BinaryKind, op: string, a: Tensor, b: Tensor, scaleA: number, scaleB: number): Tensor {
  checkSameBackend(op, a, b);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = empty(shape, 'f32', a.backend);
  a.backend.binary(kind, broadcastView(a, shape), broadcastView(b, shape), out.storage, shape, scaleA, scaleB);
  return out;
}

export interface AddOptions {
  scaleA?: number;
  scaleB?: number;
  gradScaleA?: number;
  gradScaleB?: number;
}

/** scaleA·a + scaleB·b with broadcasting (residual adds put their √α factors here). */
export function add(aIn: Operand, bIn: Operand, options: AddOptions = {}): Tensor {
  const a = typeof aIn === 'number' ? asTensor(aIn, bIn as Tensor) : aIn;
  const b = asTensor(bIn, a);
  const { scaleA = 1, scaleB = 1 } = options;
  const gradScaleA = options.gradScaleA ?? scaleA;
  const gradScaleB = options.gradScaleB ?? scaleB;
  return recordAdd(binaryKernel('add', 'add', a, b, scaleA, scaleB), a, b, { gradScaleA, gradScaleB });
}

/**
 * Records `out` (computed as scaleA·a + scaleB·b, e.g. by a fused kernel) as add's autograd
 * entry. `readyGradB(g)` may return b's gradient (gradScaleB·g) already written by another kernel;
 * it is used when b has no sink, else disposed.
 */
export function recordAdd(
  out: Tensor,
  a: Tensor,
  b: Tensor,
  { gradScaleA, gradScaleB }: { gradScaleA: number; gradScaleB: number },
  readyGradB?: (g: Tensor) => Tensor | null,
  readyGradA?: (g: Tensor) => Tensor | null,
): Tensor {
  return record(out, [a, b], (g, sinks) => {
    // A gradient the kernel before this one already wrote is used where no sink wants it.
    const ready = (given: Tensor | null, x: Tensor, sink: GradSink | null | undefined): Tensor | null => {
      const usable = given && x.requiresGrad && !sink ? given : null;
      if (given && !usable) given.dispose();
      return usable;
    };
    const readyA = ready(readyGradA?.(g) ?? null, a, sinks[0]);
    const readyB = ready(readyGradB?.(g) ?? null, b, sinks[1]);
    return [
      a.requiresGrad ? (readyA ?? addGrad(g, a, gradScaleA, sinks[0])) : null,
      b.requiresGrad ? (readyB ?? addGrad(g, b, gradScaleB, sinks[1])) : null,
    ];
  });
}

/** scale·g summed to x's shape, put into the sink with one kernel where that saves one. */
function addGrad(g: Tensor, x: Tensor, scale: number, sink: GradSink | null | undefined): Tensor | typeof SUNK {
  if (!sink) return sumTo(g, x.shape, scale);
  if (!sink.accumulate) {
    sumTo(g, x.shape, scale, sink.target);
    return SUNK;
  }
  // Adding into the sink saves a kernel only where sumTo would have made a scaled copy; an
  // unscaled same-shape gradient is a free alias, and a reduced one needs its own tensor.
  if (!sameShape(g.shape, x.shape) || (scale === 1 && !x.isLeaf)) return sumTo(g, x.shape, scale);
  const t = sink.target;
  g.backend.binary('add', t.view(), g.view(), t.storage, t.shape, 1, scale);
  return SUNK;
}

export function sub(a: Operand, b: Operand): Tensor {
  return add(a, b, { scaleB: -1 });
}

/** scale·a·b with broadcasting. */
export function mul(aIn: Operand, bIn: Operand, options: OutputScale = {}): Tensor {
  const a = typeof aIn === 'number' ? asTensor(aIn, bIn as Tensor) : aIn;
  const b = asTensor(bIn, a);
  const scale = options.scale ?? 1;
  const gradScale = options.gradScale ?? scale;
  const out = binaryKernel('mul', 'mul', a, b, scale, 1);
  return record(out, [a, b], (g) => [
    a.requiresGrad ? sumTo(binaryKernel('mul', 'mul', g, b, gradScale, 1), a.shape) : null,
    b.requiresGrad ? sumTo(binaryKernel('mul', 'mul', g, a, gradScale, 1), b.shape) : null,
  ]);
}

export function div(aIn: Operand, bIn: Operand): Tensor {
  const a = typeof aIn === 'number' ? asTensor(aIn, bIn as Tensor) : aIn;
  const b = asTensor(bIn, a);
  const out = binaryKernel('div', 'div', a, b, 1, 1);
  return record(out, [a, b], (g) => [
    a.requiresGrad ? sumTo(binaryKernel('div', 'div', g, b, 1, 1), a.shape) : null,
    // d(a/b)/db = −(a/b)/b
    b.requiresGrad ? sumTo(binaryKernel('div', 'div', binaryKernel('mul', 'div', g, out, 1, 1), b, -1, 1), b.shape) : null,
  ]);
}

/** Element-wise comparisons (no gradient): 1 where true, else 0. */
export function greater(a: Operand, b: Operand): Tensor {
  const ta = typeof a === 'number' ? asTensor(a, b as Tensor) : a;
  return binaryKernel('gt', 'greater', ta, asTensor(b, ta), 1, 1);
}

export function greaterEqual(a: Operand, b: Operand): Tensor {
  const ta = typeof a === 'number' ? asTensor(a, b as Tensor) : a;
  return binaryKernel('ge', 'greaterEqual', ta, asTensor(b, ta), 1, 1);
}

export function equal(a: Operand, b: Operand): Tensor {
  const ta = typeof a === 'number' ? asTensor(a, b as Tensor) : a;
  return binaryKernel('eq', 'equal', ta, asTensor(b, ta), 1, 1);
}

/** cond ≠ 0 ? a : b, broadcasting all three. */
export function where(cond: Tensor, aIn: Operand, bIn: Operand): Tensor {
  const a = asTensor(aIn, cond);
  const b = asTensor(bIn, cond);
  const shape = broadcastShapes('where', broadcastShapes('where', cond.shape, a.shape), b.shape);
  const out = empty(shape, 'f32', cond.backend);
  cond.backend.where(broadcastView(cond, shape), broadcastView(a, shape), broadcastView(b, shape), out.storage, shape);
  return record(out, [a, b], (g) => {
    const zero = full([], 0, 'f32', g.backend);
    const pick = (first: Tensor, second: Tensor) => {
      const t = empty(shape, 'f32', g.backend);
      g.backend.where(broadcastView(cond, shape), broadcastView(first, shape), broadcastView(second, shape), t.storage, shape);
      return t;
    };
    return [a.requiresGrad ? sumTo(pick(g, zero), a.shape) : null, b.requiresGrad ? sumTo(pick(zero, g), b.shape) : null];
  });
}

export interface UnaryOptions extends OutputScale {
  /** Multiplies the input before the function: y = scale·f(inScale·x). */
  inScale?: number;
  /**
   * The op reads x, and its backward the gradient arriving at its output, rounded to FP16 or BF16
   * (nearest-even): the values of a rounding pass before it and one on its gradient, without
   * the passes.
   */
  readFormat?: Format16;
  /**
   * The output is 16-bit storage of this format, the results rounded to it (nearest-even): for a
   * value that only products of that format read (a 16-bit tensor is accepted by matmul, and by
   * little else). The gradient is float32 as always.
   */
  outputFormat?: Format16;
  /**
   * With readFormat, for the activations that take 16-bit storage (STORAGE16_UNARY_KINDS): the
   * gradient arriving at the output may come in 16-bit storage of readFormat, and x's gradient is
   * written in it where x's producer allows the same (autograd.gradientDType): the values the
   * rounding reads give anyway.
   */
  gradStorage16?: boolean;
}

function unaryOp(kind: UnaryKind, x: Tensor, options: UnaryOptions = {}): Tensor {
  const { inScale = 1, scale = 1 } = options;
  const gradScale = options.gradScale ?? scale;
  const readFormat = options.readFormat;
  const out = empty(x.shape, options.outputFormat ?? 'f32', x.backend);
  x.backend.unary(kind, x.storage, out.storage, x.size, inScale, scale, readFormat);
  // The activations' kernels take their incoming gradient, and write x's, in 16-bit storage of the read format.
  const storage16 = options.gradStorage16 === true && readFormat !== undefined && STORAGE16_UNARY_KINDS.includes(kind);
  if (storage16) out.gradRoundedTo = readFormat;
  return record(out, [x], (g) => {
    const gx = empty(x.shape, storage16 && gradientDType(x) === readFormat ? readFormat : 'f32', x.backend);
    x.backend.unaryGrad(kind, x.storage, g.storage, gx.storage, x.size, inScale, gradScale, options.readFormat);
    return [gx];
  });
}

export const exp = (x: Tensor, o?: UnaryOptions) => unaryOp('exp', x, o);
export const log = (x: Tensor, o?: UnaryOptions) => unaryOp('log', x, o);
export const sqrt = (x: Tensor, o?: UnaryOptions) => unaryOp('sqrt', x, o);
export const rsqrt = (x: Tensor, o?: UnaryOptions) => unaryOp('rsqrt', x, o);
export const reciprocal = (x: Tensor, o?: UnaryOptions) => unaryOp('reciprocal', x, o);
export const square = (x: Tensor, o?: UnaryOptions) => unaryOp('square', x, o);
export const abs = (x: Tensor, o?: UnaryOptions) => unaryOp('abs', x, o);
export const tanh = (x: Tensor, o?: UnaryOptions) => unaryOp('tanh', x, o);
export const sigmoid = (x: Tensor, o?: UnaryOptions) => unaryOp('sigmoid', x, o);
export const relu = (x: Tensor, o?: UnaryOptions) => unaryOp('relu', x, o);
export const sin = (x: Tensor, o?: UnaryOptions) => unaryOp('sin', x, o);
export const cos = (x: Tensor, o?: UnaryOptions) => unaryOp('cos', x, o);
/** GELU, erf form (PyTorch's default) or tanh approximation. */
export const gelu = (x: Tensor, o: UnaryOptions & { approximate?: 'none' | 'tanh' } = {}) =>
  unaryOp(o.approximate === 'tanh' ? 'geluTanh' : 'gelu', x, o);

/**
 * x rounded to FP16 or BF16 (nearest-even, overflow to infinity) in 16-bit storage, outside
 * autograd: a copy for products to read in place of x (MatmulOptions.readB), made once and read by
 * the forward and the backward products alike.
 */
export function copy16(x: Tensor, format: Format16): Tensor {
  const out = empty(x.shape, format, x.backend);
  x.backend.unary('copy', x.storage, out.storage, x.size, 1, 1);
  return out;
}

/** copy16 of each tensor, in one backend call (one launch on CUDA): for copies made every step, such as a model's weights. */
export function copies16(tensors: readonly Tensor[], format: Format16): Tensor[] {
  const copies = tensors.map((x) => empty(x.shape, format, x.backend));
  const backend = tensors[0]?.backend;
  if (!backend) return copies;
  if (tensors.some((x) => x.backend !== backend)) throw new Error('copies16: tensors live on different backends');
  backend.copies16(tensors.map((x, i) => ({ src: x.storage, dst: copies[i]!.storage, n: x.size })));
  return copies;
}

/** Multiplies by a constant (one kernel; the true gradient unless gradScale says otherwise). */
export function scale(x: Tensor, factor: number, gradScale = factor): Tensor {
  return unaryOp('copy', x, { scale: factor, gradScale });
}

export function neg(x: Tensor): Tensor {
  return scale(x, -1);
}

const backwardScaledAliases = new WeakMap<Tensor, { source: Tensor; scale: number }>();

/**
 * For a tensor made by scaled(x, 1, s) (forward the identity, e.g. a unit-scaled residual
 * split): x and s, nested aliases multiplied out; otherwise the tensor itself and 1. An op whose
 * backward kernel takes a gradient factor can read x directly and apply s in that kernel, which
 * saves the alias's scaled gradient copy; the gradient is the same as through the alias.
 */
export function backwardScaleOf(t: Tensor): { source: Tensor; scale: number } {
  let source = t;
  let scale = 1;
  for (let link = backwardScaledAliases.get(source); link; link = backwardScaledAliases.get(source)) {
    source = link.source;
    scale *= link.scale;
  }
  return { source, scale };
}

/**
 * The unit-scaling primitive: forward y = fwdScale·x, backward gradX = bwdScale·gradY (not the
 * true derivative). A factor of 1 costs no kernel: the tensor is aliased.
 */
export function scaled(x: Tensor, fwdScale = 1, bwdScale = 1): Tensor {
  let out: Tensor;
  if (fwdScale === 1) {
    out = alias(x);
    if (bwdScale !== 1) backwardScaledAliases.set(out, { source: x, scale: bwdScale });
  } else {
    out = empty(x.shape, 'f32', x.backend);
    x.backend.unary('copy', x.storage, out.storage, x.size, 1, fwdScale);
  }
  return record(
    out,
    [x],
    (g, [sink]) => {
      if (bwdScale === 1) return [alias(g)];
      // Into the sink where there is one: the residual paths of unit-scaled models then cost one
      // kernel each instead of a scaled copy and an add.
      if (sink?.addend) {
        g.backend.binary('add', sink.addend.view(), g.view(), sink.target.storage, g.shape, 1, bwdScale);
        return [SUNK];
      }
      if (sink) {
        g.backend.copy(g.view(), sink.target.view(), g.shape, bwdScale, sink.accumulate);
        return [SUNK];
      }
      const gx = empty(g.shape, 'f32', g.backend);
      g.backend.unary('copy', g.storage, gx.storage, g.size, 1, bwdScale);
      return [gx];
    },
    { addendSinks: true },
  );
}

export const scaleFwd = (x: Tensor, s: number) => scaled(x, s, 1);
export const scaleBwd = (x: Tensor, s: number) => scaled(x, 1, s);
