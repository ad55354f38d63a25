import * as T from '../../tensor/index.ts';
import { applyConstraint, type Constraint } from '../constraints.ts';
import type { GemmFormats } from '../gemm-formats.ts';
import { constraintOf, type Scaling } from '../scaling.ts';

export interface MatmulScales {
  readonly output: number;
  readonly gradLeft: number;
  readonly gradRight: number;
}

/**
 * Scale rule of L[.., m, k]·R[.., k, n] (same in every rule set, §3.1/§3.2): output k^-½, left
 * grad n^-½, right grad m^-½, all three constrained together. Leading batch axes do not count.
 */
export function matmulScales(scaling: Scaling, m: number, k: number, n: number, constraint?: Constraint): MatmulScales {
  if (scaling.mode === 'regular') return { output: 1, gradLeft: 1, gradRight: 1 };
  const [output, gradLeft, gradRight] = applyConstraint(constraintOf(scaling, constraint), [k ** -0.5, n ** -0.5, m ** -0.5], 'matmul');
  return { output, gradLeft, gradRight };
}

export interface ScaledMatmulOptions {
  readonly constraint?: Constraint;
  /** Use the right operand transposed (stored [.., n, k]). */
  readonly transRight?: boolean;
  readonly formats?: GemmFormats;
}

/** Batched L·R. Unit: output k^-½, left grad n^-½, right grad m^-½, all three constrained; fused as GEMM alphas. */
export function matmul(left: T.Tensor, right: T.Tensor, scaling: Scaling, options: ScaledMatmulOptions = {}): T.Tensor {
  const m = left.shape[left.rank - 2];
  const k = left.shape[left.rank - 1];
  const n = options.transRight ? right.shape[right.rank - 2] : right.shape[right.rank - 1];
  const s = matmulScales(scaling, m, k, n, options.constraint);
  return T.matmul(left, right, {
    transB: options.transRight ?? false,
    scale: s.output,
    gradScaleA: s.gradLeft,
    gradScaleB: s.gradRight,
    inputFormat: options.formats?.inputFormat,
    gradFormat: options.formats?.gradFormat,
  });
}
