import * as T from '../../tensor/index.ts';
import { applyConstraint, type Constraint } from '../constraints.ts';
import type { GemmFormats } from '../gemm-formats.ts';
import { constraintOf, type Scaling } from '../scaling.ts';

/** The four factors of a (unit-scaled) linear layer y = output·x·W + biasForward·b. */
export interface LinearScales {
  readonly output: number;
  readonly gradInput: number;
  readonly gradWeight: number;
  readonly gradBias: number;
  /** The library scales the bias with the output (scaleFwd after F.linear); DEMO adds it after. */
  readonly biasForward: number;
}

export interface LinearOptions {
  /** Overrides the scaling's constraint for this op (e.g. `none` on a cut edge). */
  readonly constraint?: Constraint;
  /** `in-out`: weight [fanIn, fanOut], y = x·W (Keras, DEMO); `out-in`: [fanOut, fanIn] (PyTorch). */
  readonly weightLayout?: 'in-out' | 'out-in';
  /** u-μP's scale_power (p0, p1, p2): output fanIn^-p0, input grad fanOut^-p1, weight grad B^-p2. */
  readonly scalePower?: readonly [number, number, number];
  readonly formats?: GemmFormats;
  /** The weight as its products read it: a 16-bit copy (T.copy16) read in its place (T.MatmulOptions.readB). */
  readonly weightRead?: T.Tensor;
  /** The output stored in 16 bits of the product's format, for readers that round it to it anyway (T.MatmulOptions.outputFormat); no bias. */
  readonly outputFormat?: T.Format16;
  /** Gradients in 16-bit storage where readers round them anyway (T.MatmulOptions.gradStorage16). */
  readonly gradStorage16?: boolean;
}

const UNSCALED: LinearScales = { output: 1, gradInput: 1, gradWeight: 1, gradBias: 1, biasForward: 1 };

/**
 * Scale rule of a linear layer over `rows` rows (= numel(x)/fanIn, the rows sharing the weight).
 * - paper-library: output fanIn^-½, input grad fanOut^-½ (constrained together), W and b grads
 *   rows^-½, bias scaled with the output (unit-scaling-ops.md §3.1 `linear`).
 * - paper-charlm:  DEMO's `pointwise`: the constrained scale multiplies W in the forward pass, so
 *   output and input grad carry it; W and b grads ×1/rows; bias added unscaled (§7).
 * - umup:          as paper-library with scale_power (p0, p1, p2) (§3.5).
 */
export function linearScales(scaling: Scaling, fanIn: number, fanOut: number, rows: number, options: LinearOptions = {}): LinearScales {
  if (scaling.mode === 'regular') return UNSCALED;
  const constraint = constraintOf(scaling, options.constraint);
  const [p0, p1, p2] = scaling.rules === 'umup' ? (options.scalePower ?? [0.5, 0.5, 0.5]) : [0.5, 0.5, 0.5];
  const [output, gradInput] = applyConstraint(constraint, [fanIn ** -p0, fanOut ** -p1], 'linear');
  if (scaling.rules === 'paper-charlm') return { output, gradInput, gradWeight: 1 / rows, gradBias: 1 / rows, biasForward: 1 };
  return { output, gradInput, gradWeight: rows ** -p2, gradBias: rows ** -p2, biasForward: output };
}

/** x·W (+ b) for x [..., fanIn]. Unit: out fanIn^-½, input grad fanOut^-½ (constrained); W/b grads rows^-½, or 1/rows with W-folded scales (paper-charlm). */
export function linear(x: T.Tensor, weight: T.Tensor, bias: T.Tensor | null, scaling: Scaling, options: LinearOptions = {}): T.Tensor {
  const outIn = options.weightLayout === 'out-in';
  const [fanIn, fanOut] = outIn ? [weight.shape[1], weight.shape[0]] : [weight.shape[0], weight.shape[1]];
  if (weight.rank !== 2 || x.shape[x.rank - 1] !== fanIn) {
    throw new Error(`linear: input ${x.describe()} does not fit weight ${weight.describe()} (${options.weightLayout ?? 'in-out'})`);
  }
  const rows = x.size / fanIn;
  const s = linearScales(scaling, fanIn, fanOut, rows, options);
  const flat = T.reshape(x, [rows, fanIn]);
  let y = T.matmul(flat, weight, {
    transB: outIn,
    scale: s.output,
    gradScaleA: s.gradInput,
    gradScaleB: s.gradWeight,
    inputFormat: options.formats?.inputFormat,
    gradFormat: options.formats?.gradFormat,
    roundInputs: options.formats?.roundInputs,
    readB: options.weightRead,
    outputFormat: options.outputFormat,
    gradStorage16: options.gradStorage16,
  });
  if (bias && options.outputFormat) throw new Error('linear: a 16-bit output (outputFormat) takes no bias');
  if (bias) y = T.add(y, bias, { scaleB: s.biasForward, gradScaleB: s.gradBias });
  return T.reshape(y, [...x.shape.slice(0, -1), fanOut]);
}

/**
 * The readout (the last linear layer, after the last residual add: a cut edge, so unconstrained).
 * u-μP's linear_readout uses scale powers (1, ½, ½); the 2023 rules use the plain `none` linear.
 */
export function linearReadout(x: T.Tensor, weight: T.Tensor, bias: T.Tensor | null, scaling: Scaling, options: LinearOptions = {}): T.Tensor {
  const scalePower = scaling.mode === 'unit' && scaling.rules === 'umup' ? ([1, 0.5, 0.5] as const) : undefined;
  return linear(x, weight, bias, scaling, { ...options, constraint: 'none', scalePower });
}
