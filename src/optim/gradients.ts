import type { ModelParameter } from '../models/types.ts';
import * as T from '../tensor/index.ts';

/** Gives every parameter a persistent zero gradient up front, so an update never finds none
 * (a parameter the loss does not reach still gets its weight decay and momentum). */
export function ensureGradients(parameters: readonly ModelParameter[]): void {
  for (const { tensor } of parameters) {
    if (!tensor.grad) tensor.grad = T.persistent(() => T.zerosLike(tensor));
  }
}

/** Zeroes the accumulated gradients (lazily: the next backward pass writes over them). */
export function zeroGradients(parameters: readonly ModelParameter[]): void {
  for (const { tensor } of parameters) tensor.zeroGrad();
}

/**
 * Whether every gradient element is finite. This reads one number from the device (a sync), so
 * only dynamic loss scaling calls it, once per step: the sum of all gradient elements is finite
 * exactly when none is NaN or ±inf (or the sum itself overflows float32, which counts as overflow).
 */
export function gradientsFinite(parameters: readonly ModelParameter[]): boolean {
  const total = T.tidy(() =>
    T.noGrad(() => {
      let sum: T.Tensor | null = null;
      for (const { tensor } of parameters) {
        if (!tensor.grad) continue;
        const part = T.sum(tensor.grad);
        sum = sum ? T.add(sum, part) : part;
      }
      return sum;
    }),
  );
  if (!total) return true;
  const value = total.item();
  total.dispose();
  return Number.isFinite(value);
}

/** Releases the gradients (and the parameters themselves) once a run is over. */
export function disposeParameters(parameters: readonly ModelParameter[]): void {
  for (const { tensor } of parameters) {
    tensor.grad?.dispose();
    tensor.grad = null;
    tensor.dispose();
  }
}
