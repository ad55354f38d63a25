import type { Tensor } from '../tensor/index.ts';

/**
 * An optimiser over a model's parameters. Updates run as backend kernels that read the step
 * counter on the device, so `step` never waits for the device (design note 2).
 */
export interface Optimiser {
  readonly name: 'adamw' | 'sgdm' | 'lamb';
  /**
   * Applies one update from the gradients accumulated in each parameter's `.grad`, each
   * multiplied by `gradScale` first (1/lossScale to undo loss scaling, or 1), and advances the
   * step counter. Gradients are left as they are (the trainer zeroes them).
   */
  step(gradScale: number): void;
  /** Every tensor a checkpoint must hold to resume exactly (step counter and state), by stable name. */
  stateTensors(): Map<string, Tensor>;
  dispose(): void;
}
