import * as T from '../../tensor/index.ts';
import type { Scaling } from '../scaling.ts';

export interface CrossEntropyOutput {
  /** Scalar: the ordinary masked mean (mean over all rows without a mask), whatever the scaling. */
  readonly loss: T.Tensor;
  /** Scalar: number of scored rows. */
  readonly count: T.Tensor;
}

/**
 * Cross-entropy of logits [N, V] against int32 labels [N], masked by a float mask [N] (or all
 * rows). The value is always the masked mean; what the scaling changes is the logit gradient
 * (`lossScale` multiplies it in every mode):
 * - regular:       the true gradient (p − onehot)·mask/Σmask;
 * - paper-library, umup: (p − onehot)·mask·V/√(V−1) with no 1/B (§3.3: sum, then a forward-only
 *                  1/B; unit std when logits are about uniform);
 * - paper-charlm:  DEMO's mean-loss gradient ×N·V/√(V−1), N = all rows masked or not (§7), i.e.
 *                  (p − onehot)·mask·V/√(V−1)·N/Σmask.
 */
export function crossEntropy(
  logits: T.Tensor,
  labels: T.Tensor,
  mask: T.Tensor | null,
  scaling: Scaling,
  options: { lossScale?: number } = {},
): CrossEntropyOutput {
  const lossScale = options.lossScale ?? 1;
  const [rows, vocab] = logits.shape;
  const count = mask ? T.noGrad(() => T.sum(mask)) : T.scalar(rows, logits.backend);
  const unitGrad = vocab / Math.sqrt(vocab - 1);
  if (scaling.mode === 'regular' || scaling.rules === 'paper-charlm') {
    const gradScale = scaling.mode === 'regular' ? lossScale : lossScale * rows * unitGrad;
    return { loss: T.crossEntropy(logits, labels, mask, { gradScale }), count };
  }
  const total = T.sum(T.crossEntropyRows(logits, labels, mask, { gradScale: lossScale * unitGrad }));
  // Forward: the masked mean; backward: the sum's gradient, with no 1/count.
  const loss = T.customGradient([total], () => T.div(total, count), (g) => [T.alias(g)]);
  return { loss, count };
}
