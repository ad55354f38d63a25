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
    // Part i of qkv ([B, L, 3, H, D]) as an [H, B, L, D] window. Only q is copied out (it gets the bias).
    const window = (t: T.Tensor, i: number) => T.headsView(t, [H, B, L, D], [D, L * 3 * H * D, 3 * H * D], i * H * D);
    const gathered = T.copyHeads(window(qkv, 0));
    // The query bias is shared by all B·L positions (gradient ×1/N or N^-½).
    const bias = T.reshape(policy.parameter(this.queryBias), [H, 1, 1, D]);
    const q = f.tap(`${this.prefix}.query`, policy.output(T.add(gathered, bias, { gradScaleB: plan.sharedVectorGradScale(B * L) })));
    const positions = f.tap(`${this.prefix}.positions`, this.positionEmbeddings(f));
    // The policy sees qkv whole (FP8 quantises it at once); k and v are read through windows of it.
    const context = policy.matmul([q, qkv, positions], ([qq, all, eq], formats) => this.attend(qq, window(all, 1), window(all, 2), eq, formats, f));
    const merged = T.reshape(context, [B, L, H * D]);
    return f.tap(`${this.prefix}.out`, this.out.forward(f.tap(`${this.prefix}.context`, merged)));
  }

  /** [L, H·D]: row t′ holds E[h, t′, ·] for reversed positions t′, the (scaled) sinusoids times `positional` [F, H·D]. */
  private positionEmbeddings(f: ForwardContext): T.Tensor {
    const { policy, plan } = this.ctx;
    // A cut edge (its input is a constant): output F^-½, weight gradient ×1/L or L^-½.
    return policy.matmul([f.constants().sinusoidsReversed, policy.parameter(this.positional)], ([s, p], formats) =>
      nn.linear(s, p, null, plan.cutEdge, { formats }),
    );
  }

  /**
   * softmax(causal(content + relative logits))·v for q [H, B, L, D], k and v [H, B, L, D] windows
   * and positions [L, H·D], as [B, L, H, D] (the layout the output projection reads). Every product
   * is told which half the causal mask zeroes, so a backend may skip it.
   */
  private attend(q: T.Tensor, k: T.HeadsView, v: T.HeadsView, positions: T.Tensor, formats: nn.GemmFormats, f: ForwardContext): T.Tensor {
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
    const maskValue = this.ctx.config.model.attention.mask_value;
    // With a mask value this far below any logit, exp(mask − row max) underflows to exactly 0 in
    // float32, so masking inside the softmax kernel gives the same probabilities and gradients as
    // where(mask, x, mask_value) followed by a softmax, without the two extra passes.
    const inKernel = maskValue <= IN_KERNEL_MASK_BELOW;
    // Logits above the diagonal are masked, so their values never matter and their gradient is
    // exactly zero (the masked softmax's or the where's): the logit products may skip that half.
    const logitCausal = { forward: 'lower-output', gradA: 'k-to-row', gradB: 'k-from-row' } as const;
    // Probabilities above the diagonal are exactly zero only when the softmax masks them itself.
    const valueCausal = inKernel ? ({ forward: 'k-to-row', gradA: 'lower-output', gradB: 'k-from-row' } as const) : undefined;
    const content = T.matmulHeads(T.heads(q), k, { transB: true, scale: s.content.output, gradScaleA: s.content.gradLeft, gradScaleB: s.content.gradRight, causal: logitCausal, ...logitFormats });
    // Each head's q against its E, over all B·L query positions at once: [H, B·L, L].
    const reversed = T.matmulHeads(T.headsView(q, [1, H, B * L, D], [0, B * L * D, D]), T.headsView(positions, [1, H, L, D], [0, D, H * D]), {
      transB: true,
      scale: s.relative.output,
      gradScaleA: s.relative.gradLeft,
      gradScaleB: s.relative.gradRight,
      ...logitFormats,
    });
    const relative = relativeShift(T.reshape(policy.output(reversed), [H, B, L, L]));
    const summed = policy.output(T.add(policy.output(content), relative));
    const causal = { mask: f.constants().causal };
    const logits = f.tap(`${this.prefix}.logits`, inKernel ? summed : policy.output(T.where(causal.mask, summed, maskValue)), causal);
    const softmaxScales = plan.attention === 'library-ops' ? nn.softmaxScales(scaling, L) : {};
    const probs = f.tap(`${this.prefix}.probs`, policy.output(T.softmax(logits, { ...softmaxScales, causal: inKernel })), causal);
    return T.matmulHeads(T.heads(probs), v, {
      scale: s.value.output,
      gradScaleA: s.value.gradLeft,
      gradScaleB: s.value.gradRight,
      causal: valueCausal,
      out: { shape: [B, L, H, D], strides: [D, L * H * D, H * D] },
      ...valueFormats,
    });
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
        // the library's unit matmul of probabilities [L, L] and v [L, D]
        value: nn.matmulScales(scaling, L, L, D),
      };
    }
    const a = nn.attentionScales(scaling, { keys: L, headDim: D, causal: true, dropout: 0 });
    const logit = { output: a.temperature, gradLeft: a.temperature * a.gradInputs, gradRight: a.temperature * a.gradInputs };
    return { content: logit, relative: logit, value: { output: a.output, gradLeft: 1, gradRight: a.gradInputs } };
  }
}
