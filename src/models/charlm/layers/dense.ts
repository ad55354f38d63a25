import * as nn from '../../../nn/index.ts';
import type * as T from '../../../tensor/index.ts';
import type { BuildContext } from '../context.ts';

/** A linear layer x·W (+ b) with W [fanIn, fanOut]; scales from nn.linear / nn.linearReadout. */
export class DenseLayer {
  private readonly weight: T.Tensor;
  private readonly bias: T.Tensor | null;
  private readonly readout: boolean;

  constructor(
    private readonly ctx: BuildContext,
    prefix: string,
    fanIn: number,
    fanOut: number,
    options: { bias: boolean; inTrunk: boolean; kind?: 'dense' | 'qkv'; readout?: boolean },
  ) {
    this.weight = ctx.weight(`${prefix}.weight`, [fanIn, fanOut], options.kind ?? 'dense', { fanIn, fanOut, inTrunk: options.inTrunk });
    this.bias = options.bias ? ctx.vector(`${prefix}.bias`, [fanOut], 'bias', 0, options.inTrunk) : null;
    this.readout = options.readout ?? false;
  }

  /**
   * Trunk layers: nn.linear with the configured constraint (paper-charlm: W fwd ×s, W/b grads
   * ×1/N). The readout sits after the last residual add, a cut edge: unconstrained.
   */
  forward(x: T.Tensor): T.Tensor {
    const { policy } = this.ctx;
    const bias = this.bias ? policy.parameter(this.bias) : null;
    return policy.matmul([x, policy.parameter(this.weight)], ([xq, wq], formats) =>
      this.readout
        ? nn.linearReadout(xq, wq, bias, this.ctx.plan.cutEdge, { formats })
        : nn.linear(xq, wq, bias, this.ctx.scaling, { formats }),
    );
  }
}
