/** Optimisers over backend kernels, loss scaling and low-precision weight storage. */
export type { Optimiser } from './optimiser.ts';
export { AdamW, type AdamWSettings } from './adamw.ts';
export { Sgdm, type SgdmSettings } from './sgdm.ts';
export { Lamb, type LambSettings } from './lamb.ts';
export { StepCounter } from './step-counter.ts';
export { ensureGradients, zeroGradients, gradientsFinite, disposeParameters } from './gradients.ts';
export { StaticLossScale, DynamicLossScale, type LossScaler, type LossScaleState, type UpdateDecision } from './loss-scale.ts';
export { buildOptimiser, buildLossScaler, LAMB_WARMUP_FRACTION } from './build.ts';
