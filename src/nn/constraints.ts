import type { Constraint } from '../config/schema.ts';
import { ReproError } from '../errors.ts';

export type { Constraint } from '../config/schema.ts';

/**
 * Scale constraints (unit-scaling-ops.md §2). An op computes its ideal scales — the output scale
 * first, then one per input gradient that must stay consistent with it — and the constraint
 * replaces them by one shared value, so that a gradient which later merges with another path is
 * off by the same factor as the forward value. `none` keeps the ideal scales (only safe on cut
 * edges: weights, and everything after the last residual add).
 */
export function applyConstraint(constraint: Constraint, scales: readonly number[], op: string): number[] {
  const n = scales.length;
  const all = (value: number) => scales.map(() => value);
  const arity = (expected: number) => {
    if (n !== expected) {
      throw new ReproError(
        `scaling.constraint ${constraint}: ${op} has ${n - 1} constrained input gradient(s), the constraint needs ${expected - 1}`,
      );
    }
  };
  switch (constraint) {
    case 'none':
      return [...scales];
    case 'gmean':
      return all(scales.reduce((p, s) => p * s, 1) ** (1 / n));
    case 'hmean':
      return all(n / scales.reduce((p, s) => p + 1 / s, 0));
    case 'amean':
      return all(scales.reduce((p, s) => p + s, 0) / n);
    case 'to_output_scale':
      return all(scales[0]);
    case 'to_grad_input_scale':
      arity(2);
      return all(scales[1]);
    case 'to_left_grad_scale':
      arity(3);
      return all(scales[1]);
    case 'to_right_grad_scale':
      arity(3);
      return all(scales[2]);
  }
}
