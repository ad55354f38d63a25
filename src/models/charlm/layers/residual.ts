import * as T from '../../../tensor/index.ts';
import type { BuildContext, ForwardContext } from '../context.ts';
import { LayerNormLayer } from './norm.ts';

/**
 * One residual branch (experiments.md §A4): y = skip·x + branch·f(x), with LayerNorm before f
 * (pre), after the add (post) or not at all. Unit-scaled: the gradient entering the branch is
 * ×branch and the branch output's forward ×branch has no backward half (residual_split/add), so
 * the branch internals see unit gradients; the skip path keeps its true gradient.
 */
export class ResidualLayer {
  private readonly norm: LayerNormLayer | null;
  private readonly weights: { skip: number; branch: number };

  constructor(
    private readonly ctx: BuildContext,
    private readonly prefix: string,
    index: number,
    width: number,
  ) {
    this.norm = ctx.config.model.norm === 'none' ? null : new LayerNormLayer(ctx, `${prefix}.norm`, width, true);
    this.weights = ctx.plan.residual(index);
  }

  forward(x: T.Tensor, f: ForwardContext, body: (x: T.Tensor) => T.Tensor): T.Tensor {
    const { policy, scaling } = this.ctx;
    const { skip, branch } = this.weights;
    const unit = scaling.mode === 'unit';
    let input = unit ? T.scaleBwd(x, branch) : x;
    if (this.norm && this.ctx.config.model.norm === 'pre') input = f.tap(`${this.prefix}.norm`, this.norm.forward(input));
    const out = body(input);
    let y = policy.output(
      unit ? T.add(x, out, { scaleA: skip, scaleB: branch, gradScaleA: skip, gradScaleB: 1 }) : T.add(x, out, { scaleA: skip, scaleB: branch }),
    );
    if (this.norm && this.ctx.config.model.norm === 'post') y = this.norm.forward(y);
    return f.tap(`${this.prefix}.residual`, y);
  }
}
