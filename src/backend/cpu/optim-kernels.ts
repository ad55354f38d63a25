import type { AdamWMultiParams, AdamWParams, LambApplyParams, LambUpdateParams, SgdmParams } from '../backend.ts';
import { f32, i32 } from './storage.ts';

/** AdamW as in the paper's code (experiments.md §A5): bias correction folded into the step size,
 * ε added to √v, decoupled weight decay on the undecayed lr. */
export function adamw(p: AdamWParams): void {
  const t = i32(p.step)[0];
  const param = f32(p.param), grad = f32(p.grad), m = f32(p.m), v = f32(p.v);
  const decay = Math.pow(2, -(t - 1) * p.lrDecay);
  const stepSize = (p.lr * p.lrScale * decay * Math.sqrt(1 - Math.pow(p.beta2, t))) / (1 - Math.pow(p.beta1, t));
  const wd = p.lr * p.weightDecay;
  const { beta1, beta2, eps, gradScale } = p;
  for (let i = 0; i < p.n; i++) {
    const g = gradScale * grad[i];
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] - wd * param[i] - (stepSize * mi) / (Math.sqrt(vi) + eps);
  }
}

/** `adamw` per entry. Entries must not share storage: the device runs them concurrently, and
 * refusing here too keeps the twins' behaviour the same. */
export function adamwMulti(p: AdamWMultiParams): void {
  const owner = new Map<object, number>();
  p.tensors.forEach((t, i) => {
    for (const storage of [t.param, t.grad, t.m, t.v]) {
      const j = owner.get(storage);
      if (j !== undefined && j !== i) throw new Error(`adamwMulti: tensors ${j} and ${i} share a storage`);
      owner.set(storage, i);
    }
  });
  const { step, lr, lrDecay, beta1, beta2, eps, gradScale } = p;
  for (const t of p.tensors) {
    adamw({ param: t.param, grad: t.grad, m: t.m, v: t.v, n: t.n, lrScale: t.lrScale, weightDecay: t.weightDecay, step, lr, lrDecay, beta1, beta2, eps, gradScale });
  }
}

/** SGD with momentum: buf ← μ·buf + g; θ ← θ − lr_t·buf (lossScale folded into gradScale). */
export function sgdm(p: SgdmParams): void {
  const t = i32(p.step)[0];
  const param = f32(p.param), grad = f32(p.grad), buf = f32(p.momentum);
  const lr = p.lr * p.lrScale * Math.pow(2, -(t - 1) * p.lrDecay);
  const wd = p.lr * p.weightDecay;
  for (let i = 0; i < p.n; i++) {
    const b = p.mu * buf[i] + p.gradScale * grad[i];
    buf[i] = b;
    param[i] = param[i] - wd * param[i] - lr * b;
  }
}

export function lambUpdate(p: LambUpdateParams): void {
  const t = i32(p.step)[0];
  const param = f32(p.param), grad = f32(p.grad), m = f32(p.m), v = f32(p.v), u = f32(p.update);
  const c1 = 1 - Math.pow(p.beta1, t), c2 = 1 - Math.pow(p.beta2, t);
  for (let i = 0; i < p.n; i++) {
    const g = p.gradScale * grad[i];
    const mi = p.beta1 * m[i] + (1 - p.beta1) * g;
    const vi = p.beta2 * v[i] + (1 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    u[i] = mi / c1 / (Math.sqrt(vi / c2) + p.eps) + p.weightDecay * param[i];
  }
}

/** Linear warm-up to lr, then linear decay to zero at totalSteps. */
export function warmupLinearDecay(t: number, lr: number, warmupSteps: number, totalSteps: number): number {
  if (warmupSteps > 0 && t <= warmupSteps) return (lr * t) / warmupSteps;
  if (totalSteps <= warmupSteps) return lr;
  return lr * Math.max(0, (totalSteps - t) / (totalSteps - warmupSteps));
}

export function lambApply(p: LambApplyParams): void {
  const t = i32(p.step)[0];
  const param = f32(p.param), u = f32(p.update);
  const wNorm = Math.sqrt(f32(p.paramNormSq)[0]), uNorm = Math.sqrt(f32(p.updateNormSq)[0]);
  const trust = p.useTrustRatio && wNorm > 0 && uNorm > 0 ? wNorm / uNorm : 1;
  const lr = warmupLinearDecay(t, p.lr, p.warmupSteps, p.totalSteps) * trust;
  for (let i = 0; i < p.n; i++) param[i] -= lr * u[i];
}
