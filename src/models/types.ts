import type { Tensor } from '../tensor/index.ts';

/**
 * What the trainer needs from a model, and nothing more: named parameters with the facts the
 * optimisers' rules use, and a loss on a batch. Models live in src/models, the trainer in
 * src/train; this file is the contract between them.
 */
export interface ModelParameter {
  /** Dotted path, e.g. "layers.3.ffn.up.weight"; unique within the model, stable across runs. */
  readonly name: string;
  /** Created with persistent() and requiresGrad = true; .grad accumulates during backward(). */
  readonly tensor: Tensor;
  /** weight: a matrix/kernel; bias, norm (LN gain/bias), embedding, output (readout), vector
   * (other learned vectors: pad-and-shift padding, RNN initial state, query bias). */
  readonly role: 'weight' | 'bias' | 'norm' | 'embedding' | 'output' | 'vector';
  /** Multiplier of this parameter's learning rate from the scaling rules (e.g. unit scaling's
   * 1/√length for 1-D parameters, experiments.md §A5). 1 for regular models. */
  readonly lrScale: number;
  /** Whether decoupled weight decay applies (LAMB/AdamW exclusions). */
  readonly weightDecay: boolean;
}

export interface TokenBatch {
  /** int32 [sequences, sequence_length] */
  readonly tokens: Tensor;
  /** float32 [sequences, sequence_length]: 1 where the position's prediction is scored */
  readonly mask: Tensor;
}

export interface LossOutput {
  /** Scalar: mean nats per scored position (the ordinary masked mean, whatever the scaling). */
  readonly loss: Tensor;
  /** Scalar: number of scored positions (Σ mask), for exact split averages. */
  readonly count: Tensor;
}

export interface LanguageModel {
  readonly parameters: readonly ModelParameter[];
  /**
   * Builds the forward graph on the current tape (call inside a tidy() scope; call backward on
   * `loss` for training, or wrap in noGrad() for evaluation). `lossScale` multiplies the loss
   * gradient (static/dynamic loss scaling) without changing the value.
   */
  loss(batch: TokenBatch, options: { training: boolean; lossScale?: number }): LossOutput;
}
