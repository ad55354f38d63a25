import type { ExperimentConfig } from '../config/schema.ts';
import type { ModelParameter } from '../models/types.ts';
import { AdamW } from './adamw.ts';
import { Lamb } from './lamb.ts';
import { DynamicLossScale, StaticLossScale, type LossScaler } from './loss-scale.ts';
import type { Optimiser } from './optimiser.ts';
import { Sgdm } from './sgdm.ts';
import { precisionPolicy } from '../nn/precision.ts';

/** LAMB's warm-up when built from a char-LM config, which has no warm-up key: BERT phase 1's 10%. */
export const LAMB_WARMUP_FRACTION = 0.1;

/** The optimiser an experiment asks for, with the weight storage of its precision policy. */
export function buildOptimiser(parameters: readonly ModelParameter[], config: ExperimentConfig): Optimiser {
  const t = config.training;
  const precision = precisionPolicy(config.precision).weightStorage;
  switch (t.optimiser) {
    case 'adamw':
      return new AdamW(
        parameters,
        { lr: t.lr, lrDecay: t.lr_decay, beta1: t.beta1, beta2: t.beta2, eps: t.eps, weightDecay: t.weight_decay },
        precision,
      );
    case 'sgdm':
      return new Sgdm(parameters, { lr: t.lr, lrDecay: t.lr_decay, momentum: t.momentum, weightDecay: t.weight_decay }, precision);
    case 'lamb':
      return new Lamb(
        parameters,
        {
          lr: t.lr,
          warmupSteps: Math.round(LAMB_WARMUP_FRACTION * t.steps),
          totalSteps: t.steps,
          beta1: t.beta1,
          beta2: t.beta2,
          eps: t.eps,
          weightDecay: t.weight_decay,
        },
        precision,
      );
  }
}

/** Static `loss_scale` (SGD divides it out, AdamW and LAMB ignore it) or the dynamic scaler. */
export function buildLossScaler(config: ExperimentConfig): LossScaler {
  const t = config.training;
  if (t.dynamic_loss_scale) return new DynamicLossScale(t.dynamic_loss_scale);
  return new StaticLossScale(t.loss_scale, t.optimiser === 'sgdm');
}
