import * as nn from '../../../nn/index.ts';
import type * as T from '../../../tensor/index.ts';
import type { BuildContext, ForwardContext } from '../context.ts';
import { DenseLayer } from './dense.ts';

/**
 * Dense(h → m·h) → ReLU → Dense(m·h → h). paper-charlm keeps DEMO's unscaled ReLU; the library
 * rule sets use their unit ReLU (constrained √(2/(1−1/π)) and √2).
 */
export class FeedForwardLayer {
  private readonly up: DenseLayer;
  private readonly down: DenseLayer;

  constructor(
    private readonly ctx: BuildContext,
    private readonly prefix: string,
    width: number,
  ) {
    const inner = width * ctx.config.model.ffn_multiple;
    this.up = new DenseLayer(ctx, `${prefix}.up`, width, inner, { bias: true, inTrunk: true });
    this.down = new DenseLayer(ctx, `${prefix}.down`, inner, width, { bias: true, inTrunk: true });
  }

  forward(x: T.Tensor, f: ForwardContext): T.Tensor {
    const hidden = f.tap(`${this.prefix}.up`, this.up.forward(x));
    const act = f.tap(`${this.prefix}.relu`, this.ctx.policy.output(scaledRelu(this.ctx, hidden)));
    return f.tap(`${this.prefix}.down`, this.down.forward(act));
  }
}

/** The mixers' and FFN's ReLU under the plan's rule. */
export function scaledRelu(ctx: BuildContext, x: T.Tensor): T.Tensor {
  return ctx.plan.reluScaled ? nn.relu(x, ctx.scaling) : nn.relu(x, nn.REGULAR);
}
