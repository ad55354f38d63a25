import type { ModelParameter } from '../models/types.ts';
import * as T from '../tensor/index.ts';
import type { Optimiser } from './optimiser.ts';
import { StepCounter } from './step-counter.ts';
import { ensureGradients } from './gradients.ts';

export interface AdamWSettings {
  readonly lr: number;
  /** lr_t = lr·2^(−(t−1)·lrDecay) */
  readonly lrDecay: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Decoupled; applied with the undecayed lr, and only to parameters with `weightDecay` set. */
  readonly weightDecay: number;
}

/**
 * AdamW as the paper's code (experiments.md §A5): for step t, step size
 * lr·2^(−(t−1)·decay)·lrScale·√(1−β2^t)/(1−β1^t); θ ← θ − lr·wd·θ − stepSize·m/(√v + ε).
 * `lrScale` comes from each ModelParameter (unit scaling's lr/√length for 1-D parameters).
 */
export class AdamW implements Optimiser {
  readonly name = 'adamw';
  private readonly counter: StepCounter;
  private readonly m: T.Tensor[];
  private readonly v: T.Tensor[];

  constructor(
    private readonly parameters: readonly ModelParameter[],
    private readonly settings: AdamWSettings,
    /** The format weights are stored in between steps (the precision policy's `weightStorage`);
     * null: FP32. Momentum is rounded to it too, as the paper's FP16 variables were. */
    private readonly weightFormat: T.CastSpec | null = null,
  ) {
    ensureGradients(parameters);
    this.counter = new StepCounter(parameters[0]?.tensor.backend);
    this.m = T.persistent(() => parameters.map((p) => T.zerosLike(p.tensor)));
    this.v = T.persistent(() => parameters.map((p) => T.zerosLike(p.tensor)));
  }

  step(gradScale: number): void {
    this.counter.advance();
    const backend = this.parameters[0]?.tensor.backend;
    if (!backend) return;
    const { lr, lrDecay, beta1, beta2, eps, weightDecay } = this.settings;
    // One launch for every parameter: per-parameter launches dominate a small model's step.
    backend.adamwMulti({
      step: this.counter.tensor.storage,
      lr,
      lrDecay,
      beta1,
      beta2,
      eps,
      gradScale,
      tensors: this.parameters.map((p, i) => {
        if (p.tensor.backend !== backend) throw new Error(`AdamW: parameter ${p.name} is on another backend than ${this.parameters[0]!.name}`);
        return {
          param: p.tensor.storage,
          grad: p.tensor.grad!.storage,
          m: this.m[i]!.storage,
          v: this.v[i]!.storage,
          n: p.tensor.size,
          lrScale: p.lrScale,
          weightDecay: p.weightDecay ? weightDecay : 0,
        };
      }),
    });
    // Rounding after all updates equals rounding after each: a tensor's update reads only its own
    // weights, gradient and moments. One launch rounds them all; the order (m then weights,
    // parameter by parameter) is kept, as stochastic rounding draws one random stream per tensor.
    if (this.weightFormat) T.quantiseManyInPlace(this.parameters.flatMap((p, i) => [this.m[i]!, p.tensor]), this.weightFormat);
  }

  stateTensors(): Map<string, T.Tensor> {
    const state = new Map<string, T.Tensor>([['step', this.counter.tensor]]);
    this.parameters.forEach((p, i) => {
      state.set(`adamw.m.${p.name}`, this.m[i]!);
      state.set(`adamw.v.${p.name}`, this.v[i]!);
    });
    return state;
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
    this.counter.dispose();
  }
}
