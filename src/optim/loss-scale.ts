import type { DynamicLossScaleConfig } from '../config/schema.ts';
import type { ModelParameter } from '../models/types.ts';
import { gradientsFinite } from './gradients.ts';

/** What to do with this step's gradients. */
export interface UpdateDecision {
  /** false: skip the update (non-finite gradients under dynamic loss scaling) */
  readonly apply: boolean;
  /** the multiplier the optimiser applies to each gradient */
  readonly gradScale: number;
}

export interface LossScaleState {
  readonly scale: number;
  readonly goodSteps: number;
}

/**
 * Loss scaling: the model multiplies its loss gradient by `scale` (the loss value is unchanged),
 * and `decide` says how the update treats the scaled gradients.
 */
export interface LossScaler {
  /** the factor for this step's backward pass */
  readonly scale: number;
  /** Called after backward; may update the scale for the next step. */
  decide(parameters: readonly ModelParameter[]): UpdateDecision;
  state(): LossScaleState;
  restore(state: LossScaleState): void;
}

/**
 * The paper's static loss scale (§A5): SGD divides it back out; AdamW and LAMB ignore it, as in
 * the paper's code (they are scale-invariant up to ε). No host sync.
 */
export class StaticLossScale implements LossScaler {
  private readonly gradScale: number;

  constructor(
    readonly scale: number,
    divideOut: boolean,
  ) {
    this.gradScale = divideOut ? 1 / scale : 1;
  }

  decide(): UpdateDecision {
    return { apply: true, gradScale: this.gradScale };
  }

  state(): LossScaleState {
    return { scale: this.scale, goodSteps: 0 };
  }

  restore(): void {}
}

/**
 * Dynamic loss scaling (as PyTorch's GradScaler): gradients are always unscaled (÷scale) before
 * the update, since the scale changes during training and Adam's moments would otherwise mix
 * scales. A step whose gradients contain NaN/inf is skipped (the step counter does not advance)
 * and the scale is divided by `factor`; after `growth_interval` finite steps in a row it is
 * multiplied by `factor`. Checking the gradients costs one device→host read per step.
 */
export class DynamicLossScale implements LossScaler {
  private current: number;
  private goodSteps = 0;

  constructor(private readonly settings: DynamicLossScaleConfig) {
    this.current = settings.init;
  }

  get scale(): number {
    return this.current;
  }

  decide(parameters: readonly ModelParameter[]): UpdateDecision {
    const scaleUsed = this.current;
    if (!gradientsFinite(parameters)) {
      this.current = scaleUsed / this.settings.factor;
      this.goodSteps = 0;
      return { apply: false, gradScale: 1 / scaleUsed };
    }
    if (++this.goodSteps >= this.settings.growth_interval) {
      this.current = scaleUsed * this.settings.factor;
      this.goodSteps = 0;
    }
    return { apply: true, gradScale: 1 / scaleUsed };
  }

  state(): LossScaleState {
    return { scale: this.current, goodSteps: this.goodSteps };
  }

  restore(state: LossScaleState): void {
    this.current = state.scale;
    this.goodSteps = state.goodSteps;
  }
}
