import * as nn from '../../../nn/index.ts';
import type * as T from '../../../tensor/index.ts';
import type { BuildContext } from '../context.ts';

/** LayerNorm with gain (init 1) and bias (init 0); ε from model.layernorm_eps. */
export class LayerNormLayer {
  private readonly gain: T.Tensor;
  private readonly bias: T.Tensor;

  constructor(
    private readonly ctx: BuildContext,
    prefix: string,
    width: number,
    inTrunk: boolean,
  ) {
    this.gain = ctx.vector(`${prefix}.gain`, [width], 'norm', 1, inTrunk);
    this.bias = ctx.vector(`${prefix}.bias`, [width], 'norm', 0, inTrunk);
  }

  /** Gain and bias gradients ×1/rows (paper-charlm) or rows^-½ (library rule sets). */
  forward(x: T.Tensor): T.Tensor {
    const { policy, scaling } = this.ctx;
    const eps = this.ctx.config.model.layernorm_eps;
    return policy.output(nn.layerNorm(x, policy.parameter(this.gain), policy.parameter(this.bias), scaling, { eps }));
  }
}
