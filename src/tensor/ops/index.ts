/** The device-independent op set: each op's forward and backward run on backend kernels. */
import { connectAutogradOps } from '../autograd.ts';
import { persistent } from '../scope.ts';
import type { Tensor } from '../tensor.ts';
import { broadcastView } from './broadcast.ts';
import { empty, onesLike, zeros } from './creation.ts';
import { castLeafGradients, hasGradientCast } from './quantise.ts';

export * from './creation.ts';
export * from './elementwise.ts';
export * from './reduce.ts';
export * from './shape.ts';
export * from './matmul.ts';
export * from './nn.ts';
export * from './conv.ts';
export * from './quantise.ts';
export * from './custom.ts';
export * from './highway.ts';
export * from './attention.ts';
export * from './matmul-heads.ts';
export { broadcastShapes, sumTo } from './broadcast.ts';

/** target += value (element-wise, same shape), in place. */
export function addInPlace(target: Tensor, value: Tensor): void {
  target.backend.binary('add', target.view(), broadcastView(value, target.shape), target.storage, target.shape, 1, 1);
}

connectAutogradOps({
  hasGradientCast,
  castLeafGradients,
  onesLike,
  addInPlace,
  emptyLike: (t) => empty(t.shape, 'f32', t.backend),
  sumOf(a, b) {
    const out = empty(a.shape, 'f32', a.backend);
    a.backend.binary('add', a.view(), broadcastView(b, a.shape), out.storage, a.shape, 1, 1);
    return out;
  },
  accumulateGrad(leaf, grad) {
    const { tensor, zero } = leaf.gradState();
    if (tensor && zero) {
      // Stale contents count as zero: overwrite instead of fill + add.
      tensor.backend.copy(grad.view(), tensor.view(), tensor.shape, 1, false);
      leaf.markGradWritten();
      return;
    }
    if (!tensor) leaf.grad = persistent(() => zeros(leaf.shape, 'f32', leaf.backend));
    addInPlace(leaf.grad!, grad);
  },
  createLeafGrad: (leaf) => persistent(() => empty(leaf.shape, 'f32', leaf.backend)),
});
