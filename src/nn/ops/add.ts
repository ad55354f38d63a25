import * as T from '../../tensor/index.ts';
import { applyConstraint, type Constraint } from '../constraints.ts';
import { constraintOf, type Scaling } from '../scaling.ts';

/**
 * Unit-scaled add (US@9c8ad98 and u-μP; the 2023-05 library has none): each operand's gradient
 * ×(numel(out)/numel(operand))^-½ (the broadcast count), output ×2^-½ (1 if either operand has
 * one element), all three constrained. A plain number operand gives a plain add.
 */
export function add(a: T.Tensor, b: T.Tensor | number, scaling: Scaling, options: { constraint?: Constraint } = {}): T.Tensor {
  if (scaling.mode === 'regular' || typeof b === 'number') return T.add(a, b);
  const outSize = T.broadcastShapes('add', a.shape, b.shape).reduce((p, d) => p * d, 1);
  const output = a.size === 1 || b.size === 1 ? 1 : Math.SQRT1_2;
  const [scale, gradScaleA, gradScaleB] = applyConstraint(
    constraintOf(scaling, options.constraint),
    [output, (outSize / a.size) ** -0.5, (outSize / b.size) ** -0.5],
    'add',
  );
  return T.add(a, b, { scaleA: scale, scaleB: scale, gradScaleA, gradScaleB });
}
