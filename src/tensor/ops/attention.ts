/** The largest head size T.attention takes on every backend (see the backend interface). */
export { ATTENTION_MAX_HEAD_DIM } from '../../backend/backend.ts';
import type { Format16 } from '../../backend/backend.ts';
import { gradientDType, record, SUNK } from '../autograd.ts';
import { formatShape, type Tensor } from '../tensor.ts';
import { empty } from './creation.ts';
import { gradientTarget, headsView, onto, operand, windowCoverage, type HeadsView } from './heads.ts';

export { copyHeads, headsView, heads, type HeadsView } from './heads.ts';

export interface AttentionOpOptions {
  readonly causal: boolean;
  /** multiplies q·kᵀ */
  readonly temperature: number;
  /** multiplies softmax(·)·v */
  readonly outputScale: number;
  /** Backward factors (unit scaling): the probabilities' gradient g·vᵀ, q's and k's, v's. */
  readonly probsGradScale: number;
  readonly logitGradScale: number;
  readonly valueGradScale: number;
  /** 16-bit attention, FlashAttention-style (see AttentionShape.format); absent: float32. */
  readonly format?: Format16;
  /**
   * With format: the op's output is 16-bit storage of it (the output rounded, for products that
   * read it rounded anyway); the float32 output the backward needs is kept inside the op.
   */
  readonly outputFormat?: Format16;
  /**
   * With format: the output's gradient may come in 16-bit storage of it (the kernels read it
   * rounded anyway), and q's, k's and v's gradients are written in it where their source allows
   * (autograd.gradientDType) and the windows cover it.
   */
  readonly gradStorage16?: boolean;
}

/**
 * Fused causal-or-full scaled dot-product attention over heads windows (float32 throughout, or
 * 16-bit as FlashAttention runs under autocast with options.format):
 * outputScale·softmax(temperature·q·kᵀ)·v, returned as a contiguous [B, S, H, D] tensor (the
 * heads side by side, as an output projection reads them). The [S, S] scores are never stored:
 * the backward recomputes them from q, k and the softmax's log-sum-exp. Unit-scaled backward
 * factors are separate: see AttentionOpOptions.
 */
export function attention(q: HeadsView, k: HeadsView, v: HeadsView, options: AttentionOpOptions): Tensor {
  const [B, H, S, D] = q.shape;
  const keys = k.shape[2];
  const fits = (x: HeadsView, s: number) => x.shape[0] === B && x.shape[1] === H && x.shape[2] === s && x.shape[3] === D;
  if (!fits(k, keys) || !fits(v, keys)) {
    throw new Error(`attention: q ${formatShape(q.shape)}, k ${formatShape(k.shape)} and v ${formatShape(v.shape)} do not fit together`);
  }
  if (options.causal && keys !== S) throw new Error(`attention: causal needs as many keys as queries, got ${keys} and ${S}`);
  const backend = q.tensor.backend;
  if (k.tensor.backend !== backend || v.tensor.backend !== backend) throw new Error('attention: operands live on different backends');
  const format = options.format;
  if ((options.outputFormat !== undefined && options.outputFormat !== format) || (options.gradStorage16 && format === undefined)) {
    throw new Error(`attention: outputFormat and gradStorage16 need the attention's own 16-bit format, got ${options.outputFormat ?? 'no outputFormat'} with format ${format ?? 'float32'}`);
  }
  const out = empty([B, S, H, D], 'f32', backend);
  const outView = headsView(out, [B, H, S, D], [S * H * D, D, H * D]);
  // With outputFormat the caller gets out16; out, which the backward reads, is released with the step's scope like it.
  const out16 = options.outputFormat ? empty([B, S, H, D], options.outputFormat, backend) : null;
  const logSumExp = empty([B, H, S], 'f32', backend);
  const shape = { batch: B, heads: H, queries: S, keys, headDim: D, temperature: options.temperature, outputScale: options.outputScale, causal: options.causal, format };
  backend.attention({ ...shape, q: operand(q), k: operand(k), v: operand(v), out: operand(outView), out16: out16 ? onto(outView, out16) : null, logSumExp: logSumExp.storage });
  const sources = [...new Set([q.tensor, k.tensor, v.tensor])];
  const result = out16 ?? out;
  if (options.gradStorage16) result.gradRoundedTo = format!;
  return record(result, sources, (g, sinks) => {
    // One gradient buffer per source tensor; q's, k's and v's windows land in their source's (the
    // kernels write, they do not add). 16-bit ones only if all are (the kernels take one type).
    const views = sources.map((source) => [q, k, v].filter((x) => x.tensor === source));
    const grad16 = options.gradStorage16 === true && sources.every((source, i) => !sinks[i] && gradientDType(source) === format && windowCoverage(source.size, views[i]!).tiles);
    const targets = sources.map((source, i) => gradientTarget(source, sinks[i], views[i]!, false, grad16 ? format : 'f32'));
    const targetOf = (x: HeadsView) => targets[sources.indexOf(x.tensor)]!.tensor;
    const delta = empty([B, H, S], 'f32', backend);
    backend.attentionGrad({
      ...shape,
      q: operand(q),
      k: operand(k),
      v: operand(v),
      out: operand(outView),
      logSumExp: logSumExp.storage,
      gradOut: onto(outView, g),
      gradQ: onto(q, targetOf(q)),
      gradK: onto(k, targetOf(k)),
      gradV: onto(v, targetOf(v)),
      delta: delta.storage,
      probsGradScale: options.probsGradScale,
      logitGradScale: options.logitGradScale,
      valueGradScale: options.valueGradScale,
    });
    delta.dispose();
    return targets.map((t) => (t.sunk ? SUNK : t.tensor));
  });
}
