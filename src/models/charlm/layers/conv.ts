import * as nn from '../../../nn/index.ts';
import type * as T from '../../../tensor/index.ts';
import type { BuildContext, ForwardContext } from '../context.ts';
import { scaledRelu } from './ffn.ts';

/**
 * Causal grouped 1-D convolution (kernel k, g groups, width filters, bias) followed by ReLU
 * (experiments.md §A4). Kernel layout [k, width/g, width] (Keras); regular init Glorot-uniform
 * with Keras' fans k·width/g and k·width.
 */
export class ConvLayer {
  private readonly kernel: T.Tensor;
  private readonly bias: T.Tensor;
  private readonly groups: number;

  constructor(
    private readonly ctx: BuildContext,
    private readonly prefix: string,
    width: number,
  ) {
    const { kernel: k, groups } = ctx.config.model.conv;
    this.groups = groups;
    const fanIn = (k * width) / groups;
    this.kernel = ctx.weight(`${prefix}.kernel`, [k, width / groups, width], 'conv', { fanIn, fanOut: k * width, inTrunk: true });
    this.bias = ctx.vector(`${prefix}.bias`, [width], 'bias', 0, true);
  }

  forward(x: T.Tensor, f: ForwardContext): T.Tensor {
    const { policy, scaling } = this.ctx;
    const bias = policy.parameter(this.bias);
    const conv = policy.matmul([x, policy.parameter(this.kernel)], ([xq, kq]) => nn.conv1d(xq, kq, bias, scaling, { groups: this.groups }));
    const pre = f.tap(`${this.prefix}.conv`, conv);
    return f.tap(`${this.prefix}.relu`, policy.output(scaledRelu(this.ctx, pre)));
  }
}
