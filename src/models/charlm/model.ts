import type { ExperimentConfig } from '../../config/schema.ts';
import * as nn from '../../nn/index.ts';
import * as T from '../../tensor/index.ts';
import type { LanguageModel, LossOutput, ModelParameter, TokenBatch } from '../types.ts';
import { BuildContext, type ForwardContext, type SequenceConstants } from './context.ts';
import { AttentionLayer } from './layers/attention.ts';
import { ConvLayer } from './layers/conv.ts';
import { DenseLayer } from './layers/dense.ts';
import { FeedForwardLayer } from './layers/ffn.ts';
import { LayerNormLayer } from './layers/norm.ts';
import { PadShiftLayer } from './layers/pad-shift.ts';
import { reversedSinusoids } from './layers/relative.ts';
import { ResidualLayer } from './layers/residual.ts';
import { RecurrentHighwayLayer } from './layers/rnn.ts';
import { charLMPlan, type CharLMPlan } from './plan.ts';

export interface CharLMForwardOptions {
  /** Records named activations and their gradients (inspection only; synchronises). */
  readonly tap?: nn.Tap;
}

export interface CharLMLossOptions extends CharLMForwardOptions {
  readonly training: boolean;
  readonly lossScale?: number;
}

/** The character language model of experiments.md §A4, with what `repro inspect` needs. */
export interface CharLM extends LanguageModel {
  readonly config: ExperimentConfig;
  readonly vocabSize: number;
  readonly plan: CharLMPlan;
  /** The precision policy the model was built with (the trainer reads `weightStorage`). */
  readonly precision: nn.PrecisionPolicy;
  loss(batch: TokenBatch, options: CharLMLossOptions): LossOutput;
  /**
   * The scores after pad-and-shift, [B, L, V] for int32 tokens [B, L]: row i is the prediction of
   * token i from tokens 0..i−1 (row 0 is the learned padding vector).
   */
  scores(tokens: T.Tensor, options?: CharLMForwardOptions): T.Tensor;
  /** Releases the parameters, their gradients and the model's constants. */
  dispose(): void;
}

interface Mixer {
  forward(x: T.Tensor, f: ForwardContext): T.Tensor;
}

interface TrunkLayer {
  readonly mixer: Mixer;
  readonly mixerResidual: ResidualLayer;
  readonly ffn: FeedForwardLayer;
  readonly ffnResidual: ResidualLayer;
}

class CharLanguageModel implements CharLM {
  readonly plan: CharLMPlan;
  readonly precision: nn.PrecisionPolicy;
  private readonly ctx: BuildContext;
  private readonly store: nn.ParameterStore;
  private readonly embedding: T.Tensor;
  private readonly embedNorm: LayerNormLayer;
  private readonly layers: TrunkLayer[] = [];
  private readonly finalNorm: LayerNormLayer;
  private readonly readout: DenseLayer;
  private readonly padShift: PadShiftLayer;
  private readonly constantsByLength = new Map<number, SequenceConstants>();

  constructor(
    readonly config: ExperimentConfig,
    readonly vocabSize: number,
    seed: number,
  ) {
    if (!Number.isInteger(vocabSize) || vocabSize < 2) throw new Error(`buildCharLM: vocabulary size must be an integer ≥ 2, got ${vocabSize}`);
    this.plan = charLMPlan(config);
    this.precision = nn.precisionPolicy(config.precision);
    this.store = new nn.ParameterStore(seed, (t) => this.precision.initialiseWeight(t));
    const ctx = (this.ctx = new BuildContext(config, this.plan, this.precision, this.store));
    const width = config.model.hidden;
    this.embedding = ctx.weight('embedding.weight', [vocabSize, width], 'embedding', { fanIn: width, fanOut: width, inTrunk: false });
    this.embedNorm = new LayerNormLayer(ctx, 'embed_norm', width, false);
    const mixerName = config.model.mixer;
    for (let l = 0; l < config.model.depth; l++) {
      const prefix = `layers.${l}`;
      const mixerPrefix = `${prefix}.${mixerName}`;
      const mixerResidual = new ResidualLayer(ctx, mixerPrefix, 2 * l, width);
      const mixer =
        mixerName === 'attention'
          ? new AttentionLayer(ctx, mixerPrefix, width)
          : mixerName === 'conv'
            ? new ConvLayer(ctx, mixerPrefix, width)
            : new RecurrentHighwayLayer(ctx, mixerPrefix, width);
      const ffnResidual = new ResidualLayer(ctx, `${prefix}.ffn`, 2 * l + 1, width);
      const ffn = new FeedForwardLayer(ctx, `${prefix}.ffn`, width);
      this.layers.push({ mixer, mixerResidual, ffn, ffnResidual });
    }
    this.finalNorm = new LayerNormLayer(ctx, 'final_norm', width, false);
    this.readout = new DenseLayer(ctx, 'readout', width, vocabSize, { bias: true, inTrunk: false, readout: true });
    this.padShift = new PadShiftLayer(ctx, vocabSize);
  }

  get parameters(): readonly ModelParameter[] {
    return this.store.parameters;
  }

  scores(tokens: T.Tensor, options: CharLMForwardOptions = {}): T.Tensor {
    if (tokens.rank !== 2 || tokens.dtype !== 'i32') throw new Error(`CharLM: tokens must be int32 [B, L], got ${tokens.describe()} (${tokens.dtype})`);
    const [batch, length] = tokens.shape;
    const tap = options.tap ?? nn.NO_TAP;
    const f: ForwardContext = { batch, length, tap, constants: () => this.constantsFor(length) };
    const { policy } = this.ctx;
    let x = tap('embedding', nn.embedding(policy.parameter(this.embedding), tokens, this.plan.scaling));
    x = tap('embed_norm', this.embedNorm.forward(x));
    for (const layer of this.layers) {
      x = layer.mixerResidual.forward(x, f, (h) => layer.mixer.forward(h, f));
      x = layer.ffnResidual.forward(x, f, (h) => layer.ffn.forward(h, f));
    }
    x = tap('final_norm', this.finalNorm.forward(x));
    return tap('logits', this.padShift.forward(this.readout.forward(x), f));
  }

  loss(batch: TokenBatch, options: CharLMLossOptions): LossOutput {
    const [B, L] = batch.tokens.shape;
    const scores = this.scores(batch.tokens, options);
    const rows = B * L;
    return nn.crossEntropy(
      T.reshape(scores, [rows, this.vocabSize]),
      T.reshape(batch.tokens, [rows]),
      T.reshape(batch.mask, [rows]),
      this.plan.scaling,
      { lossScale: options.lossScale },
    );
  }

  private constantsFor(length: number): SequenceConstants {
    let constants = this.constantsByLength.get(length);
    if (!constants) {
      const { frequencies, max_period: maxPeriod } = this.config.model.attention;
      const sinusoids = this.ctx.constant(reversedSinusoids(length, frequencies, maxPeriod, this.plan.sinusoidScale), [length, frequencies]);
      // The table is an input like any activation: stored in the run's format.
      if (this.precision.activation) T.quantiseInPlace(sinusoids, { ...this.precision.activation, rounding: 'nearest' });
      const causal = new Float32Array(length * length);
      for (let i = 0; i < length; i++) for (let j = 0; j <= i; j++) causal[i * length + j] = 1;
      constants = { sinusoidsReversed: sinusoids, causal: this.ctx.constant(causal, [length, length]) };
      this.constantsByLength.set(length, constants);
    }
    return constants;
  }

  dispose(): void {
    this.store.dispose();
    this.ctx.disposeConstants();
    this.constantsByLength.clear();
  }
}

/**
 * Builds the char-LM of a resolved experiment (model, scaling and precision sections) for a
 * vocabulary of `vocabSize` characters; `seed` keys the Philox streams of the initial weights.
 */
export function buildCharLM(config: ExperimentConfig, vocabSize: number, seed: number): CharLM {
  return new CharLanguageModel(config, vocabSize, seed);
}
