import type { ModelParameter } from '../types.ts';
import * as T from '../../tensor/index.ts';
import * as nn from '../../nn/index.ts';

/**
 * The GPT-style character LM that ../shared/bench/pytorch-reference.md timed in PyTorch, rebuilt
 * on our engine for a like-for-like speed ratio (bench/charlm-step.ts): token embedding + learned
 * positional embedding; per layer pre-norm LayerNorm (affine) → bias-free qkv projection → causal
 * scaled dot-product attention → bias-free output projection → residual add; pre-norm LayerNorm →
 * bias-free FFN ×4 with GELU → residual add; final LayerNorm; readout; mean cross-entropy.
 * The unit-scaled variant uses the library ops of src/nn under the u-μP rules, as the reference
 * built it from unit_scaling's functional ops (linear, gelu, SDPA, residual split/add, embedding,
 * cross_entropy); the residual τ follows u-μP's transformer rule.
 * Every layer norm output and the GELU output feed only a bias-free linear, and every linear's
 * output gradient only that linear's products: the model marks them (precision.linearInput,
 * precision.linear) so native 16-bit products may round them as they read them.
 */
export interface ReferenceGptOptions {
  readonly vocab: number;
  readonly hidden: number;
  readonly depth: number;
  readonly heads: number;
  readonly sequenceLength: number;
  readonly scaling: nn.Scaling;
  readonly precision: nn.PrecisionPolicy;
  readonly seed: number;
  /**
   * Each residual add runs inside the kernel of the layer norm that reads its result
   * (nn.addLayerNorm; default). false: separate add and norm kernels, the same values.
   */
  readonly fuseResidualNorms?: boolean;
  /**
   * FP16/BF16 only: attention as PyTorch's scaled_dot_product_attention runs under autocast
   * (FlashAttention: probabilities and score gradients rounded to the format, products on
   * tensor cores; nn.AttentionOptions.internalFormat). Default true; false keeps the precision
   * policy's float32 attention internals.
   */
  readonly flashAttention16?: boolean;
  /**
   * With products that round their own operands (precision.readFormat), values that are only read
   * rounded live in 16-bit storage: the layer norms' and GELU's outputs, the up projection's
   * output, the logits, the branch outputs the residual adds read, with 16-bit attention
   * (flashAttention16) qkv and the attention's output, the gradients at all of these, and a copy
   * of each weight made once a step for its forward and backward products (T.copies16). No
   * product packs anything, and less memory is read and written: the same values. Default true;
   * false keeps them float32 (the products round them as they read them).
   */
  readonly operands16?: boolean;
}

interface Layer {
  readonly ln1Gain: T.Tensor;
  readonly ln1Bias: T.Tensor;
  readonly qkv: T.Tensor;
  readonly proj: T.Tensor;
  readonly ln2Gain: T.Tensor;
  readonly ln2Bias: T.Tensor;
  readonly up: T.Tensor;
  readonly down: T.Tensor;
}

export class ReferenceGpt {
  private readonly store: nn.ParameterStore;
  private readonly tokenEmbedding: T.Tensor;
  private readonly positionEmbedding: T.Tensor;
  private readonly layers: Layer[] = [];
  private readonly finalGain: T.Tensor;
  private readonly finalBias: T.Tensor;
  private readonly readout: T.Tensor;
  private readonly residualTau: (index: number, branches: number) => number;

  constructor(readonly options: ReferenceGptOptions) {
    const { vocab, hidden: d, depth, sequenceLength, scaling } = options;
    const unit = scaling.mode === 'unit';
    // Regular: GPT-2's N(0, 0.02) weights; unit-scaled: N(0, 1) (the library's init).
    const weight: nn.Init = { kind: 'normal', std: unit ? 1 : 0.02 };
    this.store = new nn.ParameterStore(options.seed, (t) => options.precision.initialiseWeight(t));
    const p = (name: string, shape: number[], role: ModelParameter['role'], init: nn.Init = weight) =>
      this.store.create(name, shape, { role, init, weightDecay: role === 'weight' });
    const one: nn.Init = { kind: 'constant', value: 1 };
    const zero: nn.Init = { kind: 'constant', value: 0 };
    this.tokenEmbedding = p('embedding.token', [vocab, d], 'embedding');
    this.positionEmbedding = p('embedding.position', [sequenceLength, d], 'embedding');
    for (let l = 0; l < depth; l++) {
      this.layers.push({
        ln1Gain: p(`layers.${l}.ln1.gain`, [d], 'norm', one),
        ln1Bias: p(`layers.${l}.ln1.bias`, [d], 'norm', zero),
        qkv: p(`layers.${l}.attention.qkv`, [3 * d, d], 'weight'),
        proj: p(`layers.${l}.attention.proj`, [d, d], 'weight'),
        ln2Gain: p(`layers.${l}.ln2.gain`, [d], 'norm', one),
        ln2Bias: p(`layers.${l}.ln2.bias`, [d], 'norm', zero),
        up: p(`layers.${l}.ffn.up`, [4 * d, d], 'weight'),
        down: p(`layers.${l}.ffn.down`, [d, 4 * d], 'weight'),
      });
    }
    this.finalGain = p('final_norm.gain', [d], 'norm', one);
    this.finalBias = p('final_norm.bias', [d], 'norm', zero);
    this.readout = p('readout', [vocab, d], 'output');
    this.residualTau = nn.transformerResidualScalingRule();
  }

  get parameters(): readonly ModelParameter[] {
    return this.store.parameters;
  }

  /**
   * outputRoundedOnRead: only ops that round it as they read it read the output (see
   * precision.linear); output16: and they take it in 16-bit storage (operands16).
   */
  private linear(x: T.Tensor, w: T.Tensor, read: { outputRoundedOnRead?: boolean; output16?: boolean } = {}, layer: typeof nn.linear = nn.linear): T.Tensor {
    const { precision, scaling } = this.options;
    const format = this.operandFormat();
    const prepared = this.stepWeights?.get(w);
    return precision.linear(
      [x, prepared?.used ?? precision.parameter(w)],
      ([a, b], formats) =>
        layer(a, b, null, scaling, {
          weightLayout: 'out-in',
          formats,
          weightRead: prepared?.read,
          outputFormat: read.output16 ? format : undefined,
          gradStorage16: format !== undefined,
        }),
      { outputRoundedOnRead: read.outputRoundedOnRead },
    );
  }

  /**
   * During loss() with operands16: each linear weight as the layers use it (precision.parameter)
   * and its 16-bit copy, all made up front in one call (T.copies16).
   */
  private stepWeights: Map<T.Tensor, { used: T.Tensor; read: T.Tensor }> | null = null;

  private prepareWeights(format: T.Format16): Map<T.Tensor, { used: T.Tensor; read: T.Tensor }> {
    const weights = [...this.layers.flatMap((l) => [l.qkv, l.proj, l.up, l.down]), this.readout];
    const used = weights.map((w) => this.options.precision.parameter(w));
    const read = T.copies16(used, format);
    return new Map(weights.map((w, i) => [w, { used: used[i]!, read: read[i]! }]));
  }

  /** The format of the 16-bit storage operands16 uses, if it applies. */
  private operandFormat(): T.Format16 | undefined {
    return (this.options.operands16 ?? true) ? (this.options.precision.readFormat ?? undefined) : undefined;
  }

  /**
   * Residual `index`'s add (x + out, or the unit-scaled residual_add's weights) and the backward
   * factors of its residual_split (1 when regular): the branch's is applied by the layer norm that
   * opens the branch, the skip path's by the add (its gradScaleB).
   */
  private residual(index: number): { add: T.AddOptions; branchGrad: number; skipGrad: number } {
    const { scaling, depth } = this.options;
    if (scaling.mode === 'regular') return { add: {}, branchGrad: 1, skipGrad: 1 };
    const tau = this.residualTau(index, 2 * depth);
    const w = nn.residualWeights(tau, scaling);
    return { add: nn.residualAddOptions(tau, scaling), branchGrad: w.branch, skipGrad: w.skip };
  }

  /**
   * The residual stream after sublayer `index` (its branch output `out` added to the stream `x`)
   * and the layer norm that reads it: the next branch's, or the final norm after the last.
   */
  private residualThenNorm(x: T.Tensor, out: T.Tensor, index: number, gain: T.Tensor, bias: T.Tensor, eps: number): { x: T.Tensor; normed: T.Tensor } {
    const { scaling, precision, depth } = this.options;
    const here = this.residual(index);
    const add: T.AddOptions = { ...here.add, gradScaleB: here.skipGrad };
    const [g, b] = [precision.parameter(gain), precision.parameter(bias)];
    const options = { eps, gradScaleX: index + 1 < 2 * depth ? this.residual(index + 1).branchGrad : 1 };
    if (this.options.fuseResidualNorms ?? true) {
      // Under readFormat the kernel reads the branch output rounded and the normed output's
      // gradient rounded: no rounding pass on either.
      const readFormat = precision.readFormat ?? undefined;
      const format = this.operandFormat();
      const { sum, normed } = nn.addLayerNorm(out, x, add, g, b, scaling, {
        ...options,
        aReadFormat: readFormat,
        gradReadFormat: readFormat,
        outputFormat: format,
        gradStorage16: format !== undefined,
      });
      return { x: sum, normed: readFormat ? normed : precision.linearInput(normed) };
    }
    const sum = T.add(out, x, add);
    return { x: sum, normed: precision.linearInput(nn.layerNorm(sum, g, b, scaling, options)) };
  }

  private attention(h: T.Tensor, layer: Layer): T.Tensor {
    const { heads, hidden: d, scaling, precision } = this.options;
    const [B, S] = h.shape;
    const headDim = d / heads;
    // 16-bit attention rounds q, k, v and its output's gradient as it reads them, and the output
    // projection rounds the attention's output: neither needs a rounding pass of its own.
    const internalFormat = this.attentionFormat();
    // 16-bit attention reads qkv, and the output projection the attention's output, in 16 bits (operands16).
    const stored16 = internalFormat !== undefined && this.operandFormat() === internalFormat;
    const qkv = this.linear(h, layer.qkv, { outputRoundedOnRead: internalFormat !== undefined, output16: stored16 }); // [B, S, 3d]
    // Part i of qkv ([B, S, 3, H, Dh]) as a [B, H, S, Dh] window; the result is [B, S, H, Dh].
    // The precision policy sees qkv whole: FP8 quantises all three parts at once.
    const attend = ([t]: T.Tensor[], formats: nn.GemmFormats) => {
      const part = (i: number) => T.headsView(t!, [B, heads, S, headDim], [S * 3 * d, headDim, 3 * d], i * d);
      return nn.scaledDotProductAttentionHeads(part(0), part(1), part(2), scaling, {
        causal: true,
        formats,
        internalFormat,
        outputFormat: stored16 ? internalFormat : undefined,
        gradStorage16: stored16,
      });
    };
    const attended = internalFormat !== undefined ? precision.linear([qkv], attend, { outputRoundedOnRead: true }) : precision.matmul([qkv], attend);
    const merged = T.reshape(attended, [B, S, d]);
    return this.linear(merged, layer.proj, { outputRoundedOnRead: this.branchOutputRoundedOnRead(), output16: this.branchOutputRoundedOnRead() });
  }

  /** Whether the fused residual add reads each branch's output rounded (so the branch's last linear need not round it). */
  private branchOutputRoundedOnRead(): boolean {
    return this.options.precision.readFormat !== null && (this.options.fuseResidualNorms ?? true);
  }

  private attentionFormat(): T.Format16 | undefined {
    const mode = this.options.precision.mode;
    if (mode !== 'fp16' && mode !== 'bf16') return undefined;
    return (this.options.flashAttention16 ?? true) ? mode : undefined;
  }

  private ffn(h: T.Tensor, layer: Layer): T.Tensor {
    const { scaling, precision } = this.options;
    const readFormat = precision.readFormat;
    if (readFormat) {
      // GELU reads the up projection rounded and rounds its output's gradient as it reads it; the
      // down projection rounds GELU's output: no rounding pass in the block.
      const up = this.linear(h, layer.up, { outputRoundedOnRead: true, output16: true });
      const format = this.operandFormat();
      const activated = nn.gelu(up, scaling, { readFormat, outputFormat: format, gradStorage16: format !== undefined });
      return this.linear(activated, layer.down, { outputRoundedOnRead: this.branchOutputRoundedOnRead(), output16: this.branchOutputRoundedOnRead() });
    }
    return this.linear(precision.linearInput(nn.gelu(this.linear(h, layer.up), scaling)), layer.down);
  }

  /** Mean cross-entropy of next-token predictions: inputs and labels are int32 [B, S]. */
  loss(inputs: T.Tensor, labels: T.Tensor): T.Tensor {
    const format = this.operandFormat();
    this.stepWeights = format ? this.prepareWeights(format) : null;
    try {
      return this.lossWithWeights(inputs, labels);
    } finally {
      this.stepWeights = null;
    }
  }

  private lossWithWeights(inputs: T.Tensor, labels: T.Tensor): T.Tensor {
    const { scaling, precision, hidden: d, vocab } = this.options;
    const [B, S] = inputs.shape;
    const eps = 1e-5;
    const tokens = nn.embedding(precision.parameter(this.tokenEmbedding), inputs, scaling);
    const positions = T.reshape(precision.parameter(this.positionEmbedding), [1, S, d]);
    let x = precision.output(scaling.mode === 'unit' ? nn.add(tokens, positions, scaling) : T.add(tokens, positions));
    // Sublayers in order, attention then FFN in each layer, each opened by its layer norm; the
    // final norm follows the last. Every norm but the first is computed with the residual add before it.
    const sublayers = this.layers.flatMap((layer) => [
      { gain: layer.ln1Gain, bias: layer.ln1Bias, branch: (h: T.Tensor) => this.attention(h, layer) },
      { gain: layer.ln2Gain, bias: layer.ln2Bias, branch: (h: T.Tensor) => this.ffn(h, layer) },
    ]);
    const [g0, b0] = [precision.parameter(sublayers[0]!.gain), precision.parameter(sublayers[0]!.bias)];
    const readFormat = precision.readFormat ?? undefined;
    const format = this.operandFormat();
    const first = nn.layerNorm(x, g0, b0, scaling, { eps, gradScaleX: this.residual(0).branchGrad, gradReadFormat: readFormat, outputFormat: format, gradStorage16: format !== undefined });
    let normed = readFormat ? first : precision.linearInput(first);
    sublayers.forEach((sublayer, i) => {
      const next = sublayers[i + 1] ?? { gain: this.finalGain, bias: this.finalBias };
      ({ x, normed } = this.residualThenNorm(x, sublayer.branch(normed), i, next.gain, next.bias, eps));
    });
    // The cross-entropy reads the logits, and the readout's backward their gradient, in 16 bits (operands16).
    const logits = this.linear(normed, this.readout, { outputRoundedOnRead: this.operandFormat() !== undefined, output16: true }, nn.linearReadout);
    return nn.crossEntropy(T.reshape(logits, [B * S, vocab]), T.reshape(labels, [B * S]), null, scaling).loss;
  }

  dispose(): void {
    this.store.dispose();
  }
}
