import * as T from '../../../tensor/index.ts';
import type { BuildContext, ForwardContext } from '../context.ts';

/**
 * Pad-and-shift of the readout scores [B, L, V] (experiments.md §A4): drop the last position,
 * shift every position right by one and put a learned score vector (zero init) at position 0, so
 * that position i is predicted from tokens 0..i−1 and position 0 from no context. The padding's
 * gradient is summed over the B sequences (×1/B in paper-charlm, B^-½ in the library rule sets).
 */
export class PadShiftLayer {
  private readonly padding: T.Tensor;

  constructor(
    private readonly ctx: BuildContext,
    vocab: number,
  ) {
    this.padding = ctx.vector('pad_shift.padding', [vocab], 'vector', 0, false);
  }

  forward(scores: T.Tensor, f: ForwardContext): T.Tensor {
    const { batch: B } = f;
    const padding = T.scaleBwd(this.ctx.policy.parameter(this.padding), this.ctx.plan.sharedVectorGradScale(B));
    return T.shiftIn(scores, padding);
  }
}
