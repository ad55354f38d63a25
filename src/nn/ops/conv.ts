import * as T from '../../tensor/index.ts';
import { applyConstraint, type Constraint } from '../constraints.ts';
import { constraintOf, type Scaling } from '../scaling.ts';
import type { LinearScales } from './linear.ts';

/**
 * Scale rule of a causal grouped 1-D convolution, kernel [k, Cin/g, Cout], over `positions`
 * output positions (batch × length): output (k·Cin/g)^-½ and input gradient (k·Cout/g)^-½,
 * constrained (DEMO's conv1d, u-μP's conv1d with stride 1); kernel and bias gradients
 * ×1/positions (paper-charlm, weight-folded like its linear) or positions^-½ (paper-library and
 * umup, bias scaled with the output as in their linear).
 */
export function conv1dScales(
  scaling: Scaling,
  kernel: readonly number[],
  groups: number,
  positions: number,
  constraint?: Constraint,
): LinearScales {
  if (scaling.mode === 'regular') return { output: 1, gradInput: 1, gradWeight: 1, gradBias: 1, biasForward: 1 };
  const [k, cinPerGroup, cout] = kernel;
  const [output, gradInput] = applyConstraint(
    constraintOf(scaling, constraint),
    [(k * cinPerGroup) ** -0.5, ((k * cout) / groups) ** -0.5],
    'conv1d',
  );
  if (scaling.rules === 'paper-charlm') return { output, gradInput, gradWeight: 1 / positions, gradBias: 1 / positions, biasForward: 1 };
  return { output, gradInput, gradWeight: positions ** -0.5, gradBias: positions ** -0.5, biasForward: output };
}

/** Causal grouped conv, x [B, L, Cin], kernel [k, Cin/g, Cout]. Unit: out (k·Cin/g)^-½, input grad (k·Cout/g)^-½ (constrained); kernel/bias grads (B·L)^-½ or 1/(B·L) (paper-charlm). */
export function conv1d(
  x: T.Tensor,
  kernel: T.Tensor,
  bias: T.Tensor | null,
  scaling: Scaling,
  options: { groups: number; constraint?: Constraint },
): T.Tensor {
  const positions = x.shape[0] * x.shape[1];
  const s = conv1dScales(scaling, kernel.shape, options.groups, positions, options.constraint);
  const y = T.conv1dCausal(x, kernel, { groups: options.groups, scale: s.output, gradScaleInput: s.gradInput, gradScaleWeight: s.gradWeight });
  return bias ? T.add(y, bias, { scaleB: s.biasForward, gradScaleB: s.gradBias }) : y;
}
