import { gradientDType, record, SUNK } from '../autograd.ts';
import type { DType } from '../../backend/backend.ts';
import { randomContext } from '../random.ts';
import { formatShape, sameShape, type Tensor } from '../tensor.ts';
import { empty, zeros } from './creation.ts';
import { sum } from './reduce.ts';
import { backwardScaleOf, div, recordAdd, type AddOptions } from './elementwise.ts';
import type { LayerNormSumOf, Format16 } from '../../backend/backend.ts';

export interface SoftmaxOptions {
  /** y = scale·softmax(inScale·x) */
  inScale?: number;
  scale?: number;
  /** Backward multiplier replacing `scale` (unit scaling); default: the true gradient. */
  gradScale?: number;
  /**
   * Causal attention mask over square [..., S, S] scores: query i sees keys j ≤ i. The same values
   * and gradient as adding a −∞ mask above the diagonal first, without the mask tensor or the add.
   */
  causal?: boolean;
}

function softmaxOp(x: Tensor, log: boolean, options: SoftmaxOptions): Tensor {
  const { inScale = 1, scale = 1, causal = false } = options;
  const gradScale = options.gradScale ?? scale;
  const cols = x.shape[x.rank - 1];
  const rows = x.size / cols;
  if (causal && (x.rank < 2 || x.shape[x.rank - 2] !== cols)) throw new Error(`softmax: causal needs square [..., S, S] scores, got ${x.describe()}`);
  const unscaled = empty(x.shape, 'f32', x.backend);
  x.backend.softmax(x.storage, unscaled.storage, rows, cols, inScale, 1, log, causal ? cols : 0);
  let out = unscaled;
  if (scale !== 1) {
    out = empty(x.shape, 'f32', x.backend);
    x.backend.unary('copy', unscaled.storage, out.storage, x.size, 1, scale);
  }
  return record(out, [x], (g) => {
    const gx = empty(x.shape, 'f32', x.backend);
    x.backend.softmaxGrad(unscaled.storage, g.storage, gx.storage, rows, cols, gradScale * inScale, log);
    return [gx];
  });
}

/** Softmax over the last axis. */
export function softmax(x: Tensor, options: SoftmaxOptions = {}): Tensor {
  return softmaxOp(x, false, options);
}

/** Log-softmax over the last axis. */
export function logSoftmax(x: Tensor, options: SoftmaxOptions = {}): Tensor {
  return softmaxOp(x, true, options);
}

export interface LayerNormOptions {
  eps?: number;
  /** Backward multipliers of the affine parameters' gradients (unit scaling). */
  gradScaleGamma?: number;
  gradScaleBeta?: number;
  /** Backward multiplier of x's gradient (unit scaling: the backward factor of a residual branch). */
  gradScaleX?: number;
  /** The gradient arriving at the output is read rounded to this format: a rounding pass on it, without the pass. */
  gradReadFormat?: Format16;
  /** The output is 16-bit storage of this format (rounded to it, nearest-even): see UnaryOptions.outputFormat. */
  outputFormat?: Format16;
  /** With gradReadFormat: the output's gradient may come in 16-bit storage of it (see UnaryOptions.gradStorage16). */
  gradStorage16?: boolean;
}

export interface AddLayerNormOptions extends LayerNormOptions {
  /** a is read rounded to this format: a rounding pass on a before the add, without the pass. a may be 16-bit storage of it. */
  aReadFormat?: Format16;
}

/**
 * Layer normalisation over the last axis, statistics in float32 (biased variance). Of a
 * backward-scaled alias (scaleBwd, e.g. a unit-scaled residual branch) it normalises the alias's
 * source and applies the factor inside its gradient kernel.
 */
export function layerNorm(input: Tensor, gamma: Tensor | null, beta: Tensor | null, options: LayerNormOptions = {}): Tensor {
  const { source: x, scale } = backwardScaleOf(input);
  return layerNormKernel(x, gamma, beta, options, scale, null);
}

/**
 * layerNorm(add(a, b, add)) with the add done inside the norm's forward kernel (a residual add and
 * the layer norm that reads its result): one kernel instead of two. Returns both results, recorded
 * as the two ops they stand for, so gradients are those of the unfused pair. a and b have one shape.
 */
export function addLayerNorm(
  a: Tensor,
  b: Tensor,
  add: AddOptions,
  gamma: Tensor | null,
  beta: Tensor | null,
  options: AddLayerNormOptions = {},
): { sum: Tensor; normed: Tensor } {
  if (a.backend !== b.backend) throw new Error(`addLayerNorm: operands live on different backends (${a.backend.name}, ${b.backend.name})`);
  if (!sameShape(a.shape, b.shape)) throw new Error(`addLayerNorm: operands ${a.describe()} and ${b.describe()} differ in shape`);
  const { scaleA = 1, scaleB = 1 } = add;
  const gradScaleA = add.gradScaleA ?? scaleA;
  const gradScaleB = add.gradScaleB ?? scaleB;
  const sum = empty(a.shape, 'f32', a.backend);
  const sumOf: LayerNormSumOf = { a: a.storage, b: b.storage, scaleA, scaleB, readFormatA: options.aReadFormat };
  // b's gradient, gradScaleB times the sum's, costs a kernel of its own unless the factor is 1 (an
  // alias) or b's gradient lands in a sink. Otherwise (a unit-scaled skip path) the norm's backward
  // kernel writes it: it runs just before the add's backward and writes the sum's whole gradient.
  const b32 = deliveredGradient();
  const copyGradX = gradScaleB !== 1 && b.requiresGrad && !b.isLeaf && a !== b ? { scale: gradScaleB, deliver: b32.deliver } : null;
  // a's gradient, gradScaleA times the sum's, in 16 bits where its producer reads it rounded
  // anyway (autograd.gradientDType): the norm's backward kernel writes that copy too.
  const a16 = deliveredGradient();
  const copyGradA16 = options.gradStorage16 && a.requiresGrad && a !== b ? { scale: gradScaleA, dtype: () => gradientDType(a), deliver: a16.deliver } : null;
  const recordSum = (out: Tensor) => recordAdd(out, a, b, { gradScaleA, gradScaleB }, b32.ready, a16.ready);
  const normed = layerNormKernel(sum, gamma, beta, options, 1, { sumOf, recordSum, copyGradX, copyGradA16 });
  return { sum, normed };
}

/**
 * A gradient the norm's backward kernel writes for an input of the fused add (deliver), handed to
 * the add's backward (ready) if it is still the gradient of the sum that arrives there.
 */
function deliveredGradient(): { deliver: (source: Tensor, copy: Tensor) => void; ready: (g: Tensor) => Tensor | null } {
  let written: { source: Tensor; copy: Tensor } | null = null;
  return {
    deliver: (source, copy) => void (written = { source, copy }),
    ready: (g) => {
      const w = written;
      written = null;
      if (!w) return null;
      if (w.source.shared === g.shared) return w.copy;
      w.copy.dispose();
      return null;
    },
  };
}

/**
 * The layer norm kernel and its autograd entry, on x's source (gradient factor xScale). With
 * `fused`, the kernel first writes x as the sum, and x is recorded (recordSum) before the norm.
 */
function layerNormKernel(
  x: Tensor,
  gamma: Tensor | null,
  beta: Tensor | null,
  options: LayerNormOptions,
  xScale: number,
  fused: {
    sumOf: LayerNormSumOf;
    recordSum: (sum: Tensor) => Tensor;
    /** Also write scale·(x's gradient) and hand it, with the tensor holding x's gradient, to deliver. */
    copyGradX: { scale: number; deliver: (source: Tensor, copy: Tensor) => void } | null;
    /** The same, rounded into 16-bit storage when dtype() (asked during the backward) is 16-bit. */
    copyGradA16: { scale: number; dtype: () => DType; deliver: (source: Tensor, copy: Tensor) => void } | null;
  } | null,
): Tensor {
  const { eps = 1e-5, gradScaleGamma = 1, gradScaleBeta = 1, gradScaleX = 1 } = options;
  const gradXScale = xScale * gradScaleX;
  const cols = x.shape[x.rank - 1];
  const rows = x.size / cols;
  for (const p of [gamma, beta]) {
    if (p && (p.rank !== 1 || p.shape[0] !== cols)) throw new Error(`layerNorm: parameter ${p.describe()} does not match ${x.describe()}`);
  }
  const out = empty(x.shape, options.outputFormat ?? 'f32', x.backend);
  if (options.gradStorage16 && options.gradReadFormat) out.gradRoundedTo = options.gradReadFormat;
  const mean = empty([rows], 'f32', x.backend);
  const rstd = empty([rows], 'f32', x.backend);
  x.backend.layerNorm({ x: x.storage, gamma: gamma?.storage ?? null, beta: beta?.storage ?? null, out: out.storage, mean: mean.storage, rstd: rstd.storage, rows, cols, eps, sumOf: fused?.sumOf ?? null });
  // The sum's entry goes on the tape before the norm's, as if add had run first.
  if (fused) fused.recordSum(x);
  const inputs = [x, ...(gamma ? [gamma] : []), ...(beta ? [beta] : [])];
  return record(out, inputs, (g, sinks) => {
    const [xSink, ...paramSinks] = sinks;
    const gx = xSink?.target ?? empty(x.shape, 'f32', x.backend);
    // The kernel has one accumulate flag for gamma and beta: use their sinks only when they agree.
    const wanted = [gamma, beta].filter((p) => p !== null);
    const paramsSunk = wanted.every((p, i) => !p.requiresGrad || paramSinks[i]) && new Set(paramSinks.filter((k) => k).map((k) => k!.accumulate)).size <= 1;
    const accumulateParams = paramsSunk && paramSinks.some((k) => k?.accumulate);
    const paramGrad = (p: Tensor | null, i: number): Tensor | null => {
      if (!p?.requiresGrad) return null;
      return paramsSunk ? paramSinks[i]!.target : empty(p.shape, 'f32', x.backend);
    };
    const gg = paramGrad(gamma, 0);
    const gb = paramGrad(beta, gamma ? 1 : 0);
    const copyGradX = fused?.copyGradX ?? null;
    const copy = copyGradX ? empty(x.shape, 'f32', x.backend) : null;
    const copyGradA16 = fused?.copyGradA16 ?? null;
    const dtypeA = copyGradA16?.dtype() ?? 'f32';
    const copy16 = copyGradA16 && dtypeA !== 'f32' ? empty(x.shape, dtypeA, x.backend) : null;
    x.backend.layerNormGrad({
      x: x.storage,
      gamma: gamma?.storage ?? null,
      mean: mean.storage,
      rstd: rstd.storage,
      gradOut: g.storage,
      gradX: gx.storage,
      gradGamma: gg?.storage ?? null,
      gradBeta: gb?.storage ?? null,
      rows,
      cols,
      gradXScale,
      gradGammaScale: gradScaleGamma,
      gradBetaScale: gradScaleBeta,
      accumulateGradX: xSink?.accumulate ?? false,
      gradXAddend: xSink?.addend?.storage ?? null,
      accumulateParams,
      gradXCopy: copy && copyGradX ? { target: copy.storage, scale: copyGradX.scale } : null,
      gradOutReadFormat: options.gradReadFormat,
      gradXCopy16: copy16 && copyGradA16 ? { target: copy16.storage, scale: copyGradA16.scale } : null,
    });
    if (copy && copyGradX) copyGradX.deliver(gx, copy);
    if (copy16 && copyGradA16) copyGradA16.deliver(gx, copy16);
    const param = (t: Tensor | null): Tensor | typeof SUNK | null => (t && paramsSunk ? SUNK : t);
    const result: (Tensor | typeof SUNK | null)[] = [xSink ? SUNK : gx];
    if (gamma) result.push(param(gg));
    if (beta) result.push(param(gb));
    return result;
  }, { addendSinks: true });
}

/** Looks up rows of `table` ([V, d]) for int32 ids of any shape; gradient scatter-adds. */
export function embedding(table: Tensor, ids: Tensor, options: { gradScale?: number } = {}): Tensor {
  if (ids.dtype !== 'i32') throw new Error(`embedding: ids must be int32, got ${ids.dtype}`);
  if (table.rank !== 2) throw new Error(`embedding: table must be [vocab, dim], got ${formatShape(table.shape)}`);
  const dim = table.shape[1];
  const out = empty([...ids.shape, dim], 'f32', table.backend);
  table.backend.gather(table.storage, ids.storage, out.storage, ids.size, dim);
  const gradScale = options.gradScale ?? 1;
  return record(out, [table], (g, [sink]) => {
    const gt = sink?.target ?? zeros(table.shape, 'f32', table.backend);
    if (sink && !sink.accumulate) table.backend.fill(gt.storage, 0, gt.size, 0);
    table.backend.scatterAdd(g.storage, ids.storage, gt.storage, ids.size, dim, gradScale);
    return [sink ? SUNK : gt];
  });
}

/** Per-row masked cross-entropy mask·(logsumexp(logits) − logits[label]) for logits [N, V]. */
export function crossEntropyRows(logits: Tensor, labels: Tensor, mask: Tensor | null, options: { gradScale?: number } = {}): Tensor {
  if (logits.rank !== 2) throw new Error(`crossEntropy: logits must be [rows, vocab], got ${logits.describe()}`);
  const [rows, vocab] = logits.shape;
  if (labels.dtype !== 'i32' || labels.size !== rows) throw new Error(`crossEntropy: labels ${labels.describe()} do not match ${logits.describe()}`);
  if (mask && mask.size !== rows) throw new Error(`crossEntropy: mask ${mask.describe()} does not match ${logits.describe()}`);
  const loss = empty([rows], 'f32', logits.backend);
  const lse = empty([rows], 'f32', logits.backend);
  logits.backend.crossEntropy({ logits: logits.storage, labels: labels.storage, mask: mask?.storage ?? null, rows, vocab, loss: loss.storage, logSumExp: lse.storage });
  const scale = options.gradScale ?? 1;
  return record(loss, [logits], (g) => {
    // 16 bits where the logits' producer reads their gradient rounded anyway.
    const gx = empty(logits.shape, gradientDType(logits), logits.backend);
    logits.backend.crossEntropyGrad({
      logits: logits.storage,
      labels: labels.storage,
      mask: mask?.storage ?? null,
      logSumExp: lse.storage,
      gradLoss: g.storage,
      gradLogits: gx.storage,
      rows,
      vocab,
      scale,
    });
    return [gx];
  });
}

/**
 * Mean cross-entropy over the rows the mask keeps (all rows without a mask): the value is the
 * ordinary masked mean; `gradScale` multiplies the logit gradient (unit scaling's loss rule).
 */
export function crossEntropy(
  logits: Tensor,
  labels: Tensor,
  mask: Tensor | null = null,
  options: { reduction?: 'mean' | 'sum'; gradScale?: number } = {},
): Tensor {
  const rows = crossEntropyRows(logits, labels, mask, { gradScale: options.gradScale });
  const total = sum(rows);
  if (options.reduction === 'sum') return total;
  if (!mask) return div(total, logits.shape[0]);
  return div(total, sum(mask));
}

/**
 * Inverted dropout: keeps each element with probability 1−p and divides kept values by 1−p
 * (times `scale`). Draws from the step's random context.
 */
export function dropout(x: Tensor, p: number, options: { training?: boolean; scale?: number; gradScale?: number } = {}): Tensor {
  const { training = true, scale = 1 } = options;
  const gradScale = options.gradScale ?? scale;
  if (p < 0 || p >= 1) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  if (!training || p === 0) {
    const out = empty(x.shape, 'f32', x.backend);
    x.backend.unary('copy', x.storage, out.storage, x.size, 1, scale);
    return record(out, [x], (g) => {
      const gx = empty(x.shape, 'f32', x.backend);
      x.backend.unary('copy', g.storage, gx.storage, x.size, 1, gradScale);
      return [gx];
    });
  }
  const ctx = randomContext();
  const u = empty(x.shape, 'f32', x.backend);
  x.backend.random(u.storage, x.size, 'uniform', ctx.seed, ctx.nextStream(), ctx.epoch(), 0, 1);
  const keepMask = empty(x.shape, 'f32', x.backend);
  const pt = empty([], 'f32', x.backend);
  x.backend.fill(pt.storage, 0, 1, p);
  x.backend.binary('ge', u.view(), { storage: pt.storage, offset: 0, strides: x.shape.map(() => 0) }, keepMask.storage, x.shape, 1, 1);
  const out = empty(x.shape, 'f32', x.backend);
  x.backend.binary('mul', x.view(), keepMask.view(), out.storage, x.shape, scale / (1 - p), 1);
  return record(out, [x], (g) => {
    const gx = empty(x.shape, 'f32', x.backend);
    x.backend.binary('mul', g.view(), keepMask.view(), gx.storage, x.shape, gradScale / (1 - p), 1);
    return [gx];
  });
}
