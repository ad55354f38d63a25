import type { ModelParameter } from '../models/types.ts';
import * as T from '../tensor/index.ts';
import { ensureGradients } from './gradients.ts';
import type { Optimiser } from './optimiser.ts';
import { StepCounter } from './step-counter.ts';

export interface LambSettings {
  /** Peak lr, reached at the end of the warm-up. */
  readonly lr: number;
  /** Linear warm-up from 0 over this many steps, then linear decay to 0 at `totalSteps`. */
  readonly warmupSteps: number;
  readonly totalSteps: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
}

/**
 * LAMB (BERT, experiments.md §B1): u = m̂/(√v̂ + ε) + wd·θ, then θ ← θ − lr_t·(‖θ‖/‖u‖)·u.
 * Parameters with `weightDecay` unset (biases, LayerNorm) get neither weight decay nor the trust
 * ratio, the usual exclusion. A parameter's lrScale multiplies its lr.
 */
export class Lamb implements Optimiser {
  readonly name = 'lamb';
  private readonly counter: StepCounter;
  private readonly m: T.Tensor[];
  private readonly v: T.Tensor[];
  /** u of the parameter being updated, sized for the largest; parameters take turns (one stream). */
  private readonly update: T.Tensor;
  /** ‖θ‖² and ‖u‖² of the parameter being updated, likewise shared. */
  private readonly paramNormSq: T.Tensor;
  private readonly updateNormSq: T.Tensor;

  constructor(
    private readonly parameters: readonly ModelParameter[],
    private readonly settings: LambSettings,
    /** The format weights are stored in between steps (the precision policy's `weightStorage`);
     * null: FP32. Momentum is rounded to it too, as the paper's FP16 variables were. */
    private readonly weightFormat: T.CastSpec | null = null,
  ) {
    ensureGradients(parameters);
    const backend = parameters[0]?.tensor.backend ?? T.defaultBackend();
    this.counter = new StepCounter(backend);
    [this.m, this.v] = T.persistent(() => [0, 1].map(() => parameters.map((p) => T.zerosLike(p.tensor))));
    this.update = T.persistent(() => T.zeros([Math.max(1, ...parameters.map((p) => p.tensor.size))], 'f32', backend));
    [this.paramNormSq, this.updateNormSq] = T.persistent(() => [T.zeros([1], 'f32', backend), T.zeros([1], 'f32', backend)]);
  }

  step(gradScale: number): void {
    this.counter.advance();
    const { lr, warmupSteps, totalSteps, beta1, beta2, eps, weightDecay } = this.settings;
    this.parameters.forEach((p, i) => {
      const weights = p.tensor;
      const update = this.update;
      const b = weights.backend;
      b.lambUpdate({
        param: weights.storage,
        grad: p.tensor.grad!.storage,
        m: this.m[i]!.storage,
        v: this.v[i]!.storage,
        update: update.storage,
        n: weights.size,
        step: this.counter.tensor.storage,
        beta1,
        beta2,
        eps,
        weightDecay: p.weightDecay ? weightDecay : 0,
        gradScale,
      });
      b.reduce('sumSquares', weights.storage, [weights.size], this.paramNormSq.storage, [1], 1);
      b.reduce('sumSquares', update.storage, [weights.size], this.updateNormSq.storage, [1], 1);
      b.lambApply({
        param: weights.storage,
        update: update.storage,
        paramNormSq: this.paramNormSq.storage,
        updateNormSq: this.updateNormSq.storage,
        n: weights.size,
        step: this.counter.tensor.storage,
        lr: lr * p.lrScale,
        warmupSteps,
        totalSteps,
        useTrustRatio: p.weightDecay,
      });
    });
    // Rounding after all updates equals rounding after each (an update reads only its own
    // tensors); one launch, the random streams drawn in the same order (moment, then weights).
    if (this.weightFormat) T.quantiseManyInPlace(this.parameters.flatMap((p, i) => [this.m[i]!, p.tensor]), this.weightFormat);
  }

  stateTensors(): Map<string, T.Tensor> {
    const state = new Map<string, T.Tensor>([['step', this.counter.tensor]]);
    this.parameters.forEach((p, i) => {
      state.set(`lamb.m.${p.name}`, this.m[i]!);
      state.set(`lamb.v.${p.name}`, this.v[i]!);
    });
    return state;
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v, this.update, this.paramNormSq, this.updateNormSq]) t.dispose();
    this.counter.dispose();
  }
}
