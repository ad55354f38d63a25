/** The tensor engine's public surface. */
export * from './ops/index.ts';
export { Tensor, shapeSize, contiguousStrides, formatShape } from './tensor.ts';
export { backward, noGrad, isGradEnabled, record } from './autograd.ts';
export { tidy, keep, persistent } from './scope.ts';
export { defaultBackend, setDefaultBackend, withBackend, cpuBackend } from './device.ts';
export { RandomContext, randomContext, setRandomContext } from './random.ts';
export { isolated } from './run-context.ts';
