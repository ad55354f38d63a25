import type { ModelParameter } from '../../src/models/types.ts';
import * as T from '../../src/tensor/index.ts';

/** A trainable parameter with given values, for driving an optimiser by hand. */
export function parameter(
  name: string,
  values: readonly number[],
  options: { lrScale?: number; weightDecay?: boolean; role?: ModelParameter['role'] } = {},
): ModelParameter {
  const tensor = T.persistent(() => T.tensor(Float32Array.from(values)));
  tensor.requiresGrad = true;
  tensor.name = name;
  return { name, tensor, role: options.role ?? 'weight', lrScale: options.lrScale ?? 1, weightDecay: options.weightDecay ?? true };
}

/** Writes the gradient a backward pass would have accumulated. */
export function setGradient(p: ModelParameter, values: readonly number[]): void {
  p.tensor.backend.write(p.tensor.grad!.storage, Float32Array.from(values));
}

export function values(p: ModelParameter): number[] {
  return Array.from(p.tensor.toFloat32Array());
}
