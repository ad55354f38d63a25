/** Host wrappers of the optimiser kernels. */
import type { AdamWParams, LambApplyParams, LambUpdateParams, SgdmParams, Storage } from '../backend.ts';
import { OPTIM_MODULE } from './kernels/optim.ts';
import { asCuda, type CudaRuntime } from './runtime.ts';
import { checkCount } from './strided.ts';

function vectors(op: string, n: number, named: Record<string, Storage>): Record<string, number> {
  const addresses: Record<string, number> = {};
  for (const [name, storage] of Object.entries(named)) {
    checkCount(op, name, storage, n);
    if (storage.dtype !== 'f32') throw new TypeError(`${op}: ${name} must be float32 storage`);
    addresses[name] = asCuda(storage, op).address;
  }
  return addresses;
}

function stepAddress(op: string, step: Storage): number {
  if (step.dtype !== 'i32' || step.size < 1) throw new TypeError(`${op}: step must be a 1-element int32 storage`);
  return asCuda(step, op).address;
}

export function adamw(rt: CudaRuntime, p: AdamWParams): void {
  const v = vectors('adamw', p.n, { param: p.param, grad: p.grad, m: p.m, v: p.v });
  const kernel = rt.kernel(OPTIM_MODULE, 'adamw', ['p', 'p', 'p', 'p', 'i', 'p', 'd', 'd', 'd', 'd', 'd', 'd', 'd', 'd', 'i']);
  const aligned = [v.param!, v.grad!, v.m!, v.v!].every((a) => a % 16 === 0) ? 1 : 0;
  rt.launchLinear(kernel, Math.ceil(p.n / 4), [
    v.param!, v.grad!, v.m!, v.v!, p.n, stepAddress('adamw', p.step), p.lr, p.lrDecay, p.lrScale, p.beta1, p.beta2, p.eps, p.weightDecay, p.gradScale,
    aligned,
  ]);
}

export function sgdm(rt: CudaRuntime, p: SgdmParams): void {
  const v = vectors('sgdm', p.n, { param: p.param, grad: p.grad, momentum: p.momentum });
  const kernel = rt.kernel(OPTIM_MODULE, 'sgdm', ['p', 'p', 'p', 'i', 'p', 'd', 'd', 'd', 'd', 'd', 'd']);
  rt.launchLinear(kernel, p.n, [
    v.param!, v.grad!, v.momentum!, p.n, stepAddress('sgdm', p.step), p.lr, p.lrDecay, p.lrScale, p.mu, p.weightDecay, p.gradScale,
  ]);
}

export function lambUpdate(rt: CudaRuntime, p: LambUpdateParams): void {
  const v = vectors('lambUpdate', p.n, { param: p.param, grad: p.grad, m: p.m, v: p.v, update: p.update });
  const kernel = rt.kernel(OPTIM_MODULE, 'lamb_update', ['p', 'p', 'p', 'p', 'p', 'i', 'p', 'd', 'd', 'd', 'd', 'd']);
  rt.launchLinear(kernel, p.n, [
    v.param!, v.grad!, v.m!, v.v!, v.update!, p.n, stepAddress('lambUpdate', p.step), p.beta1, p.beta2, p.eps, p.weightDecay, p.gradScale,
  ]);
}

export function lambApply(rt: CudaRuntime, p: LambApplyParams): void {
  const v = vectors('lambApply', p.n, { param: p.param, update: p.update });
  const norms = vectors('lambApply', 1, { paramNormSq: p.paramNormSq, updateNormSq: p.updateNormSq });
  const kernel = rt.kernel(OPTIM_MODULE, 'lamb_apply', ['p', 'p', 'p', 'p', 'i', 'p', 'd', 'd', 'd', 'i']);
  rt.launchLinear(kernel, p.n, [
    v.param!, v.update!, norms.paramNormSq!, norms.updateNormSq!, p.n, stepAddress('lambApply', p.step), p.lr, p.warmupSteps, p.totalSteps,
    p.useTrustRatio ? 1 : 0,
  ]);
}
