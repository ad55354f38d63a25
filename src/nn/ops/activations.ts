import * as T from '../../tensor/index.ts';
import { applyConstraint, type Constraint } from '../constraints.ts';
import { LIBRARY_GELU_SCALES, MEASURED_SCALES, RELU_EXACT_SCALES, logInterpolate, type Nonlinearity } from '../constants.ts';
import { constraintOf, type Scaling } from '../scaling.ts';

/** y = scale·f(inScale·x); backward gradScale·inScale·f'(inScale·x)·g (the engine's unary options). */
export interface ElementwiseScales {
  readonly inScale: number;
  readonly scale: number;
  readonly gradScale: number;
}

export interface ActivationOptions {
  readonly constraint?: Constraint;
  /** u-μP's GELU `mult`: f(x) = gelu(mult·x)/mult (1 elsewhere). */
  readonly mult?: number;
  /** The input, and in the backward the output's gradient, read rounded to this format (T.UnaryOptions.readFormat). */
  readonly readFormat?: T.Format16;
  /** The output stored in 16 bits of this format, for products of that format (T.UnaryOptions.outputFormat). */
  readonly outputFormat?: T.Format16;
  /** Gradients in 16-bit storage where readers round them anyway (T.UnaryOptions.gradStorage16). */
  readonly gradStorage16?: boolean;
}

/** Ideal (output, grad) scales of a nonlinearity before the constraint. */
function idealScales(kind: Nonlinearity, rules: 'paper-library' | 'paper-charlm' | 'umup', mult: number): { output: number; grad: number } {
  if (rules === 'umup') {
    if (kind === 'gelu') {
      // u-μP gelu: α = 1/(1 + 0.25/mult²); out L(α, 2, √(2/(1−1/π))), grad L(α, 2, √2) (§3.5).
      const alpha = 1 / (1 + 0.25 / mult ** 2);
      return { output: logInterpolate(alpha, 2, RELU_EXACT_SCALES.output), grad: logInterpolate(alpha, 2, RELU_EXACT_SCALES.grad) };
    }
    // ReLU is u-μP's GELU as mult → ∞ (α → 1): exactly ReLU's own constants. tanh and sigmoid have
    // no u-μP rule; they keep their measured constants.
    if (kind === 'relu') return RELU_EXACT_SCALES;
    return MEASURED_SCALES[kind];
  }
  // 2023 rules: the library's GELU constants, the measured ones for the others (§3.1 table).
  if (kind === 'gelu') return LIBRARY_GELU_SCALES;
  if (kind === 'relu') return RELU_EXACT_SCALES;
  return MEASURED_SCALES[kind];
}

/** Scale rule of an element-wise nonlinearity: 1/std of output and gradient, constrained together. */
export function activationScales(kind: Nonlinearity, scaling: Scaling, options: ActivationOptions = {}): ElementwiseScales {
  const mult = kind === 'gelu' && scaling.mode === 'unit' && scaling.rules === 'umup' ? (options.mult ?? 1) : 1;
  if (scaling.mode === 'regular') return { inScale: 1, scale: 1, gradScale: 1 };
  const ideal = idealScales(kind, scaling.rules, mult);
  const [output, grad] = applyConstraint(constraintOf(scaling, options.constraint), [ideal.output, ideal.grad], kind);
  return { inScale: mult, scale: output / mult, gradScale: grad / mult };
}

const UNARY = { gelu: T.gelu, relu: T.relu, tanh: T.tanh, sigmoid: T.sigmoid } as const;

function activation(kind: Nonlinearity, x: T.Tensor, scaling: Scaling, options: ActivationOptions): T.Tensor {
  return UNARY[kind](x, { ...activationScales(kind, scaling, options), readFormat: options.readFormat, outputFormat: options.outputFormat, gradStorage16: options.gradStorage16 });
}

/** GELU (erf form): 2023 rules 1/0.588 and 1/0.675 constrained (gmean 1.5873); u-μP interpolation. */
export const gelu = (x: T.Tensor, scaling: Scaling, options: ActivationOptions = {}) => activation('gelu', x, scaling, options);
/** ReLU: output √(2/(1−1/π)) = 1.713, gradient √2, constrained. */
export const relu = (x: T.Tensor, scaling: Scaling, options: ActivationOptions = {}) => activation('relu', x, scaling, options);
/** tanh: output 1.593, gradient 1.467 (measured), constrained. */
export const tanh = (x: T.Tensor, scaling: Scaling, options: ActivationOptions = {}) => activation('tanh', x, scaling, options);
/** sigmoid: output 4.801, gradient 4.723 (measured), constrained. */
export const sigmoid = (x: T.Tensor, scaling: Scaling, options: ActivationOptions = {}) => activation('sigmoid', x, scaling, options);
