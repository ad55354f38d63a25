import * as T from '../../tensor/index.ts';
import { logInterpolate } from '../constants.ts';
import type { GemmFormats } from '../gemm-formats.ts';
import type { Scaling } from '../scaling.ts';
import { ReproError } from '../../errors.ts';

/** Softmax temperature (multiplies q·kᵀ), output scale, and the gradient scale of q, k and v. */
export interface AttentionScales {
  readonly temperature: number;
  readonly output: number;
  readonly gradInputs: number;
}

export interface AttentionScaleOptions {
  /** keys per query (the sequence length of v) */
  readonly keys: number;
  readonly headDim: number;
  readonly causal: boolean;
  readonly dropout: number;
  /** u-μP's `mult` (temperature mult/d) */
  readonly mult?: number;
}

/**
 * Scale rule of scaled dot-product attention; q, k and v gradients and the output share one
 * scale σ (scaleBwd on q, k, v; scaleFwd on the output; causal masks are ignored except in u-μP):
 * - regular: temperature 1/√d, σ = 1.
 * - paper-library, paper-charlm: the library's first SDPA rule (US@9c8ad98, 2023-08; the 2023-05
 *   library composes unit matmul and softmax instead): temperature 1/√d, σ = √(s/e·(1−p)).
 * - umup: temperature mult/d, σ = √(1−p)/L(α, √((causal ? ln s : 1)/s), 1), α = 1/(1+4d/mult²).
 */
export function attentionScales(scaling: Scaling, o: AttentionScaleOptions): AttentionScales {
  const s = o.keys;
  const d = o.headDim;
  if (scaling.mode === 'regular') return { temperature: d ** -0.5, output: 1, gradInputs: 1 };
  if (scaling.rules !== 'umup') {
    const sigma = Math.sqrt((s / Math.E) * (1 - o.dropout));
    return { temperature: d ** -0.5, output: sigma, gradInputs: sigma };
  }
  const mult = o.mult ?? 1;
  const alpha = 1 / (1 + (4 * d) / mult ** 2);
  const lower = Math.sqrt((o.causal ? Math.log(s) : 1) / s);
  const sigma = Math.sqrt(1 - o.dropout) / logInterpolate(alpha, lower, 1);
  return { temperature: mult / d, output: sigma, gradInputs: sigma };
}

export interface AttentionOptions {
  readonly causal: boolean;
  readonly dropout?: number;
  readonly training?: boolean;
  readonly mult?: number;
  /** Formats of q, k, v for the q·kᵀ GEMM (set by the precision policy). */
  readonly formats?: GemmFormats;
  /**
   * 16-bit attention as PyTorch's FlashAttention runs it under autocast: the fused op with P and
   * dS rounded to this format and its products on tensor cores (T.attention's `format`), whatever
   * REPRO_ATTENTION says. Needs head size ≤ T.ATTENTION_MAX_HEAD_DIM, no dropout and q, k, v in
   * distinct windows. Absent: float32 attention internals.
   */
  readonly internalFormat?: T.Format16;
  /** With internalFormat: a 16-bit output and 16-bit gradients where readers round them anyway (T.AttentionOpOptions.outputFormat, gradStorage16). */
  readonly outputFormat?: T.Format16;
  readonly gradStorage16?: boolean;
}

/**
 * How attention over heads windows runs (env REPRO_ATTENTION, read on each call):
 * - 'materialised' (default): matmul, softmax, matmul with the products reading q, k, v (and
 *   writing the output) through their windows (T.matmulHeads), the [S, S] probabilities stored,
 *   and under the causal mask the zero half of every product skippable by the backend;
 * - 'fused': one op, T.attention (head size ≤ T.ATTENTION_MAX_HEAD_DIM, no dropout, q, k and v
 *   in distinct windows), never storing the probabilities: the least memory, but slower on CUDA
 *   (float32 CUDA-core kernels; bench/attention.ts); other cases run 'materialised';
 * - 'copies': the chain on [B, H, S, D] copies of the windows (T.matmul), as before the windowed
 *   products existed; kept to compare against.
 */
export type AttentionImplementation = 'materialised' | 'fused' | 'copies';

export function attentionImplementation(): AttentionImplementation {
  if (process.env.REPRO_FUSED_ATTENTION !== undefined) throw new ReproError('REPRO_FUSED_ATTENTION was replaced by REPRO_ATTENTION=fused (or materialised, the default, or copies)');
  const setting = process.env.REPRO_ATTENTION;
  if (setting === undefined || setting === '') return 'materialised';
  if (setting === 'materialised' || setting === 'fused' || setting === 'copies') return setting;
  throw new ReproError(`REPRO_ATTENTION must be materialised, fused or copies, got ${setting}`);
}

function sameWindow(a: T.HeadsView, b: T.HeadsView): boolean {
  return a.tensor === b.tensor && a.offset === b.offset && a.strides.every((s, i) => s === b.strides[i]);
}

/** Whether T.attention takes this head size and dropout. */
function fusable(headDim: number, dropout: number, training: boolean): boolean {
  return headDim <= T.ATTENTION_MAX_HEAD_DIM && !(dropout > 0 && training);
}

function implementationFor(q: T.HeadsView, k: T.HeadsView, v: T.HeadsView, dropout: number, training: boolean, internalFormat: T.Format16 | undefined): AttentionImplementation {
  const chosen = attentionImplementation();
  if (chosen !== 'fused' && internalFormat === undefined) return chosen;
  const distinct = !sameWindow(q, k) && !sameWindow(q, v) && !sameWindow(k, v);
  if (distinct && fusable(q.shape[3], dropout, training)) return 'fused';
  if (internalFormat !== undefined) {
    throw new ReproError(`attention: ${internalFormat} internals need head size ≤ ${T.ATTENTION_MAX_HEAD_DIM} (got ${q.shape[3]}), no dropout while training and distinct q, k, v`);
  }
  return 'materialised';
}

/** softmax(temperature·q·kᵀ, causal: keys after the query masked)·v for q, k, v [B, H, S, D], as [B, H, S, D]. Unit: σ on the q, k, v grads and on the output (√(s/e·(1−p)) or u-μP's), fused into the kernels. */
export function scaledDotProductAttention(q: T.Tensor, k: T.Tensor, v: T.Tensor, scaling: Scaling, options: AttentionOptions): T.Tensor {
  // 16-bit internals always take the heads path, whose checks say what they need.
  const fused = options.internalFormat !== undefined || (attentionImplementation() === 'fused' && q.rank === 4 && fusable(q.shape[3], options.dropout ?? 0, options.training ?? true));
  if (!fused) return unfusedAttention(q, k, v, scaling, options);
  return T.permute(scaledDotProductAttentionHeads(T.heads(q), T.heads(k), T.heads(v), scaling, options), [0, 2, 1, 3]);
}

/**
 * scaledDotProductAttention over heads windows (e.g. of a fused qkv projection), returned as
 * [B, S, H, D] (the heads side by side, as an output projection reads them); see
 * AttentionImplementation for how it runs. The rule is scaledDotProductAttention's.
 */
export function scaledDotProductAttentionHeads(q: T.HeadsView, k: T.HeadsView, v: T.HeadsView, scaling: Scaling, options: AttentionOptions): T.Tensor {
  const [B, H, S, D] = q.shape;
  const keys = k.shape[2];
  const p = options.dropout ?? 0;
  if (options.causal && keys !== S) throw new Error(`scaledDotProductAttention: causal needs as many keys as queries, got ${keys} and ${S}`);
  const implementation = implementationFor(q, k, v, p, options.training ?? true, options.internalFormat);
  if (implementation === 'copies') {
    return T.permute(unfusedAttention(T.copyHeads(q), T.copyHeads(k), T.copyHeads(v), scaling, options), [0, 2, 1, 3]);
  }
  const sc = attentionScales(scaling, { keys, headDim: D, causal: options.causal, dropout: p, mult: options.mult });
  // The unfused chain's factors: q·kᵀ gradients temperature·σ, the probabilities' gradient 1, v's σ.
  const logitGradScale = sc.temperature * sc.gradInputs;
  if (implementation === 'fused') {
    return T.attention(q, k, v, {
      causal: options.causal,
      temperature: sc.temperature,
      outputScale: sc.output,
      probsGradScale: 1,
      logitGradScale,
      valueGradScale: sc.gradInputs,
      format: options.internalFormat,
      outputFormat: options.outputFormat,
      gradStorage16: options.gradStorage16,
    });
  }
  // Logits above the diagonal are masked (their gradient is exactly zero), and the masked softmax
  // makes those probabilities exactly zero (dropout keeps them so): the causal halves may be skipped.
  const logits = T.matmulHeads(q, k, {
    transB: true,
    scale: sc.temperature,
    gradScaleA: logitGradScale,
    gradScaleB: logitGradScale,
    inputFormat: options.formats?.inputFormat,
    gradFormat: 'fp32',
    causal: options.causal ? { forward: 'lower-output', gradA: 'k-to-row', gradB: 'k-from-row' } : undefined,
  });
  let probs = T.softmax(logits, { causal: options.causal });
  if (p > 0) probs = T.dropout(probs, p, { training: options.training ?? true });
  return T.matmulHeads(T.heads(probs), v, {
    scale: sc.output,
    gradScaleA: 1,
    gradScaleB: sc.gradInputs,
    causal: options.causal ? { forward: 'k-to-row', gradA: 'lower-output', gradB: 'k-from-row' } : undefined,
    out: { shape: [B, S, H, D], strides: [S * H * D, D, H * D] },
  });
}

/** The op-by-op form on [..., S, D] tensors: a q·kᵀ matmul, a softmax with the causal mask inside, a matmul with v. */
function unfusedAttention(q: T.Tensor, k: T.Tensor, v: T.Tensor, scaling: Scaling, options: AttentionOptions): T.Tensor {
  const s = k.shape[k.rank - 2];
  const d = q.shape[q.rank - 1];
  const p = options.dropout ?? 0;
  const sc = attentionScales(scaling, { keys: s, headDim: d, causal: options.causal, dropout: p, mult: options.mult });
  const logits = T.matmul(q, k, {
    transB: true,
    scale: sc.temperature,
    gradScaleA: sc.temperature * sc.gradInputs,
    gradScaleB: sc.temperature * sc.gradInputs,
    inputFormat: options.formats?.inputFormat,
    gradFormat: 'fp32',
  });
  let probs = T.softmax(logits, { causal: options.causal });
  if (p > 0) probs = T.dropout(probs, p, { training: options.training ?? true });
  return T.matmul(probs, v, { scale: sc.output, gradScaleA: 1, gradScaleB: sc.gradInputs });
}
