import { noGrad, record } from '../autograd.ts';
import type { Tensor } from '../tensor.ts';

/**
 * A general custom-gradient hook: `forward` runs without recording, and `backward` maps the
 * output gradient to one gradient (or null) per input. Scale rules that are not a plain
 * scaled() can be written with it.
 */
export function customGradient(
  inputs: readonly Tensor[],
  forward: () => Tensor,
  backward: (gradOutput: Tensor, output: Tensor) => readonly (Tensor | null)[],
): Tensor {
  const out = noGrad(forward);
  return record(out, inputs, (g) => backward(g, out));
}
