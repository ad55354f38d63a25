export { buildCharLM, type CharLM, type CharLMForwardOptions, type CharLMLossOptions } from './model.ts';
export { charLMPlan, type CharLMPlan, type WeightKind } from './plan.ts';
export { sinusoidTable, reversedSinusoids, relativeShift } from './layers/relative.ts';
