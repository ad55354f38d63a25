import * as T from '../../tensor/index.ts';
import type { Scaling } from '../scaling.ts';

/**
 * Dropout. Unit-scaled: ×√(1−p) forward and backward, always unconstrained and also applied
 * outside training (§3.1), which turns inverted dropout's mean preservation into variance
 * preservation.
 */
export function dropout(x: T.Tensor, p: number, scaling: Scaling, options: { training: boolean }): T.Tensor {
  const factor = scaling.mode === 'unit' ? Math.sqrt(1 - p) : 1;
  if (factor === 1 && (!options.training || p === 0)) return x;
  return T.dropout(x, p, { training: options.training, scale: factor, gradScale: factor });
}
