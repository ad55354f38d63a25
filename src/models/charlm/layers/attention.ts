import * as nn from '../../../nn/index.ts';
import * as T from '../../../tensor/index.ts';
import type { BuildContext, ForwardContext } from '../context.ts';
import { DenseLayer } from './dense.ts';
import { relativeShift } from './relative.ts';

/**
 * Causal multi-head self-attention with Transformer-XL-style relative positions and a learned
 * query bias (experiments.md §A4). The q·kᵀ, softmax and attn·v scaling depends on the plan:
 * - plain (regular, paper-charlm): logits (q·k + q·E)/√d, plain softmax and attn·v (DEMO scales
 *   only the projections);
 * - library-ops (paper-library): the 2023 library's MHSA, unit matmul → unit softmax → unit
 *   matmul; the content and relative logits are each a unit matmul and are summed with weights
 *   2^-½ (forward and backward alike) so that their sum stays unit;
 * - sdpa (umup): u-μP's SDPA rule: temperature 1/d and σ on the gradients of q, k, v and E and
 *   on the output.
 */
/** Mask values at or below this are applied inside the softmax kernel (see attend). */
const IN_KERNEL_MASK_BELOW = -1e4;

export class AttentionLayer {
  private readonly qkv: DenseLayer;
  private readonly queryBias: T.Tensor;
  private readonly positional: T.Tensor;
  private readonly out: DenseLayer;
  private readonly heads: number;
  private readonly headSize: number;

  constructor(
    private readonly ctx: BuildContext,
    private readonly prefix: string,
    width: number,
  ) {
    const { heads, head_size: headSize, frequencies } = ctx.config.model.attention;
    this.heads = heads;
    this.headSize = headSize;
    const inner = heads * headSize;
    this.qkv = new DenseLayer(ctx, `${prefix}.qkv`, width, 3 * inner, { bias: false, inTrunk: true, kind: 'qkv' });
    this.queryBias = ctx.vector(`${prefix}.query_bias`, [heads, headSize], 'vector', 0, true);
    this.positional = ctx.weight(`${prefix}.positional`, [frequencies, inner], 'positional', { fanIn: frequencies, fanOut: inner, inTrunk: true });
    this.out = new DenseLayer(ctx, `${prefix}.out`, inner, width, { bias: true, inTrunk: true });
  }

  forward(x: T.Tensor, f: ForwardContext): T.Tensor {
    const { policy, plan } = this.ctx;
    const { batch: B, length: L } = f;
    const H = this.heads;
    const D = this.headSize;
    const qkv = f.tap(`${this.prefix}.qkv`, this.qkv.forward(x));
    // Part i of qkv ([B, L, 3, H, D]) as [H, B, L, D], gathered by one strided copy.
    const take = (i: number) => T.asStrided(qkv, [H, B, L, D], [D, L * 3 * H * D, 3 * H * D, 1], i * H * D);
    // The query bias is shared by all B·L positions (gradient ×1/N or N^-½).
    const bias = T.reshape(policy.parameter(this.queryBias), [H, 1, 1, D]);
    const q = f.tap(`${this.prefix}.query`, policy.output(T.add(take(0), bias, { gradScaleB: plan.sharedVectorGradScale(B * L) })));
    const positions = f.tap(`${this.prefix}.positions`, this.positionEmbeddings(f));
    const context = policy.matmul([q, take(1), take(2), positions], ([qq, kq, vq, eq], formats) => this.attend(qq, kq, vq, eq, formats, f));
    const merged = T.reshape(T.permute(context, [1, 2, 0, 3]), [B, L, H * D]);
    return f.tap(`${this.prefix}.out`, this.out.forward(f.tap(`${this.prefix}.context`, merged)));
  }

  /** E[h, t′, d] for reversed positions t′: the (scaled) sinusoids times `positional` [F, H·D]. */
  private positionEmbeddings(f: ForwardContext): T.Tensor {
    const { policy, plan } = this.ctx;
    const L = f.length;
    // A cut edge (its input is a constant): output F^-½, weight gradient ×1/L or L^-½.
    const flat = policy.matmul([f.constants().sinusoidsReversed, policy.parameter(this.positional)], ([s, p], formats) =>
      nn.linear(s, p, null, plan.cutEdge, { formats }),
    );
    return T.permute(T.reshape(flat, [L, this.heads, this.headSize]), [1, 0, 2]);
  }

  /** softmax(causal(content + relative logits))·v for q, k, v [H, B, L, D] and E [H, L, D]. */
  private attend(q: T.Tensor, k: T.Tensor, v: T.Tensor, e: T.Tensor, formats: nn.GemmFormats, f: ForwardContext): T.Tensor {
    const { policy, plan, scaling } = this.ctx;
    const { batch: B, length: L } = f;
    const H = this.heads;
    const D = this.headSize;
    const s = this.logitScales(B, L);
    // FP8 quantises only q, k, v and E (the SDPA inputs): the probabilities and the gradients
    // inside the attention stay FP32. FP16/BF16 round every tensor, so every GEMM may use them.
    const fp8 = policy.mode === 'fp8';
    const logitFormats = fp8 ? { inputFormat: formats.inputFormat, gradFormat: 'fp32' as const } : formats;
    const valueFormats = fp8 ? {} : formats;
    const content = T.matmul(q, k, { transB: true, scale: s.content.output, gradScaleA: s.content.gradLeft, gradScaleB: s.content.gradRight, ...logitFormats });
    const reversed = T.matmul(T.reshape(q, [H, B * L, D]), e, {
      transB: true,
      scale: s.relative.output,
      gradScaleA: s.relative.gradLeft,
      gradScaleB: s.relative.gradRight,
      ...logitFormats,
    });
    const relative = relativeShift(T.reshape(policy.output(reversed), [H, B, L, L]));
    const summed = policy.output(T.add(policy.output(content), relative));
    const maskValue = this.ctx.config.model.attention.mask_value;
    const causal = { mask: f.constants().causal };
    // With a mask value this far below any logit, exp(mask − row max) underflows to exactly 0 in
    // float32, so masking inside the softmax kernel gives the same probabilities and gradients as
    // where(mask, x, mask_value) followed by a softmax, without the two extra passes.
    const inKernel = maskValue <= IN_KERNEL_MASK_BELOW;
    const logits = f.tap(`${this.prefix}.logits`, inKernel ? summed : policy.output(T.where(causal.mask, summed, maskValue)), causal);
    if (plan.attention === 'library-ops') {
      const probs = f.tap(`${this.prefix}.probs`, policy.output(T.softmax(logits, { ...nn.softmaxScales(scaling, L), causal: inKernel })), causal);
      return nn.matmul(probs, v, scaling, { formats: valueFormats });
    }
    const probs = f.tap(`${this.prefix}.probs`, policy.output(T.softmax(logits, { causal: inKernel })), causal);
    return T.matmul(probs, v, { scale: s.value.output, gradScaleA: s.value.gradLeft, gradScaleB: s.value.gradRight, ...valueFormats });
  }

  /** GEMM factors of the content logits, relative logits and attn·v under the plan. */
  private logitScales(B: number, L: number): { content: nn.MatmulScales; relative: nn.MatmulScales; value: nn.MatmulScales } {
    const { plan, scaling } = this.ctx;
    const D = this.headSize;
    const plain = { output: D ** -0.5, gradLeft: D ** -0.5, gradRight: D ** -0.5 };
    const one = { output: 1, gradLeft: 1, gradRight: 1 };
    if (plan.attention === 'plain') return { content: plain, relative: plain, value: one };
    if (plan.attention === 'library-ops') {
      const w = Math.SQRT1_2;
      const times = (m: nn.MatmulScales) => ({ output: w * m.output, gradLeft: w * m.gradLeft, gradRight: w * m.gradRight });
      return {
        content: times(nn.matmulScales(scaling, L, D, L)),
        relative: times(nn.matmulScales(scaling, B * L, D, L)),
        value: one,
      };
    }
    const a = nn.attentionScales(scaling, { keys: L, headDim: D, causal: true, dropout: 0 });
    const logit = { output: a.temperature, gradLeft: a.temperature * a.gradInputs, gradRight: a.temperature * a.gradInputs };
    return { content: logit, relative: logit, value: { output: a.output, gradLeft: 1, gradRight: a.gradInputs } };
  }
}
