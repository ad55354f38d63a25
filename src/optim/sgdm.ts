import type { ModelParameter } from '../models/types.ts';
import * as T from '../tensor/index.ts';
import { ensureGradients } from './gradients.ts';
import type { Optimiser } from './optimiser.ts';
import { StepCounter } from './step-counter.ts';

export interface SgdmSettings {
  readonly lr: number;
  /** lr_t = lr·2^(−(t−1)·lrDecay) */
  readonly lrDecay: number;
  /** μ; the paper's code does not record it, 0.9 is its unit test's value (§A5). */
  readonly momentum: number;
  /** Decoupled, on the undecayed lr, for parameters with `weightDecay` set. */
  readonly weightDecay: number;
}

/**
 * SGD with momentum as the paper's code (§A5): buf ← μ·buf + g; θ ← θ − lr_t·lrScale·buf. The
 * loss scale is divided back out through `step(1/lossScale)`.
 */
export class Sgdm implements Optimiser {
  readonly name = 'sgdm';
  private readonly counter: StepCounter;
  private readonly momentum: T.Tensor[];

  constructor(
    private readonly parameters: readonly ModelParameter[],
    private readonly settings: SgdmSettings,
    /** The format weights are stored in between steps (the precision policy's `weightStorage`);
     * null: FP32. Momentum is rounded to it too, as the paper's FP16 variables were. */
    private readonly weightFormat: T.CastSpec | null = null,
  ) {
    ensureGradients(parameters);
    this.counter = new StepCounter(parameters[0]?.tensor.backend);
    this.momentum = T.persistent(() => parameters.map((p) => T.zerosLike(p.tensor)));
  }

  step(gradScale: number): void {
    this.counter.advance();
    const { lr, lrDecay, momentum, weightDecay } = this.settings;
    this.parameters.forEach((p, i) => {
      const weights = p.tensor;
      weights.backend.sgdm({
        param: weights.storage,
        grad: p.tensor.grad!.storage,
        momentum: this.momentum[i]!.storage,
        n: weights.size,
        step: this.counter.tensor.storage,
        lr,
        lrDecay,
        lrScale: p.lrScale,
        mu: momentum,
        weightDecay: p.weightDecay ? weightDecay : 0,
        gradScale,
      });
    });
    // Rounding after all updates equals rounding after each (an update reads only its own
    // tensors); one launch, the random streams drawn in the same order (moment, then weights).
    if (this.weightFormat) T.quantiseManyInPlace(this.parameters.flatMap((p, i) => [this.momentum[i]!, p.tensor]), this.weightFormat);
  }

  stateTensors(): Map<string, T.Tensor> {
    const state = new Map<string, T.Tensor>([['step', this.counter.tensor]]);
    this.parameters.forEach((p, i) => state.set(`sgdm.momentum.${p.name}`, this.momentum[i]!));
    return state;
  }

  dispose(): void {
    for (const t of this.momentum) t.dispose();
    this.counter.dispose();
  }
}
