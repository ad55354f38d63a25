import * as T from '../../tensor/index.ts';
import { applyConstraint, type Constraint } from '../constraints.ts';
import { LIBRARY_SOFTMAX_DIVISORS, logInterpolate } from '../constants.ts';
import { constraintOf, type Scaling } from '../scaling.ts';
import type { ElementwiseScales } from './activations.ts';

export interface SoftmaxOptions {
  readonly constraint?: Constraint;
  /** u-μP's `mult`: softmax(mult·x). */
  readonly mult?: number;
}

/**
 * Scale rule of a softmax over n entries. 2023 rules: output n/1.31, gradient n/1.65, constrained
 * (gmean n/1.4702). u-μP: α = 1/(1 + 4/mult²), output L(α, n, √n), gradient L(α, n/mult, √(n/mult)).
 */
export function softmaxScales(scaling: Scaling, n: number, options: SoftmaxOptions = {}): ElementwiseScales {
  if (scaling.mode === 'regular') return { inScale: 1, scale: 1, gradScale: 1 };
  const mult = scaling.rules === 'umup' ? (options.mult ?? 1) : 1;
  let ideal: [number, number];
  if (scaling.rules === 'umup') {
    const alpha = 1 / (1 + 4 / mult ** 2);
    ideal = [logInterpolate(alpha, n, Math.sqrt(n)), logInterpolate(alpha, n / mult, Math.sqrt(n / mult))];
  } else ideal = [n / LIBRARY_SOFTMAX_DIVISORS.output, n / LIBRARY_SOFTMAX_DIVISORS.grad];
  const [output, grad] = applyConstraint(constraintOf(scaling, options.constraint), ideal, 'softmax');
  return { inScale: mult, scale: output, gradScale: grad };
}

/** Softmax over the last axis. Unit: output n/1.31, grad n/1.65 (2023) or u-μP's L(α, n, √n) pair, constrained. */
export function softmax(x: T.Tensor, scaling: Scaling, options: SoftmaxOptions = {}): T.Tensor {
  return T.softmax(x, softmaxScales(scaling, x.shape[x.rank - 1], options));
}
