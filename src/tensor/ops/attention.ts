/** The largest head size T.attention takes on every backend (see the backend interface). */
export { ATTENTION_MAX_HEAD_DIM } from '../../backend/backend.ts';
import type { Format16 } from '../../backend/backend.ts';
import { record, SUNK } from '../autograd.ts';
import { formatShape, type Tensor } from '../tensor.ts';
import { empty } from './creation.ts';
import { gradientTarget, headsView, onto, operand, type HeadsView } from './heads.ts';

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
  const out = empty([B, S, H, D], 'f32', backend);
  const outView = headsView(out, [B, H, S, D], [S * H * D, D, H * D]);
  const logSumExp = empty([B, H, S], 'f32', backend);
  const shape = { batch: B, heads: H, queries: S, keys, headDim: D, temperature: options.temperature, outputScale: options.outputScale, causal: options.causal, format: options.format };
  backend.attention({ ...shape, q: operand(q), k: operand(k), v: operand(v), out: operand(outView), logSumExp: logSumExp.storage });
  const sources = [...new Set([q.tensor, k.tensor, v.tensor])];
  return record(out, sources, (g, sinks) => {
    // One gradient buffer per source tensor; q's, k's and v's windows land in their source's (the
    // kernels write, they do not add).
    const targets = sources.map((source, i) => gradientTarget(source, sinks[i], [q, k, v].filter((x) => x.tensor === source), false));
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
