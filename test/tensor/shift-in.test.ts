import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import { gradcheck, param, values } from './gradcheck.ts';

/** The slice-and-concat form shiftIn replaces. */
function sliceConcat(x: T.Tensor, head: T.Tensor): T.Tensor {
  const [B, L, ...rest] = x.shape;
  const first = T.broadcastTo(T.reshape(head, [1, 1, ...rest]), [B, 1, ...rest]);
  return L === 1 ? first : T.concat([first, T.slice(x, 1, 0, L - 1)], 1);
}

function run(form: (x: T.Tensor, h: T.Tensor) => T.Tensor, shape: number[]): Float32Array[] {
  return T.tidy(() => {
    const x = param(values(shape.reduce((p, d) => p * d, 1), 3), shape);
    const head = param(values(shape.slice(2).reduce((p, d) => p * d, 1), 4), shape.slice(2));
    const out = form(x, head);
    T.backward(T.sum(T.mul(out, T.tensor(values(out.size, 5), [...out.shape]))));
    // With L = 1 the slice-and-concat form never reads x (no gradient at all): count that as zeros.
    return [out.toFloat32Array(), x.grad?.toFloat32Array() ?? new Float32Array(x.size), head.grad!.toFloat32Array()];
  });
}

describe('shiftIn', () => {
  for (const shape of [[3, 5, 4], [2, 1, 6], [2, 4, 2, 3]]) {
    it(`gives exactly the slice-and-concat values and gradients for [${shape.join(', ')}]`, () => {
      const ours = run(T.shiftIn, shape);
      const theirs = run(sliceConcat, shape);
      ours.forEach((a, i) => expect(Array.from(a)).toEqual(Array.from(theirs[i]!)));
    });
  }

  it('matches central differences', () => {
    gradcheck([[2, 3, 4], [4]], (x, h) => T.shiftIn(x, h));
  });

  it('refuses a head that does not fit', () => {
    expect(() => T.shiftIn(T.zeros([2, 3, 4]), T.zeros([5]))).toThrow(/does not fit/);
  });
});
