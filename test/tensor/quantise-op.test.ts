import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import { parseFormat } from '../../src/formats/registry.ts';

const e4m3 = { format: parseFormat('e4m3-paper'), rounding: 'nearest' as const };
const e5m2 = { format: parseFormat('e5m2-paper'), rounding: 'nearest' as const };

describe('quantise as an op', () => {
  it('rounds the forward values and passes the gradient straight through', () => {
    T.tidy(() => {
      const x = T.tensor([1.0625, 1000, -0.3, 3e-4], [4]);
      x.requiresGrad = true;
      const y = T.quantise(x, e4m3, null);
      // 1.0625 is a tie between 1 and 1.125 → even code (1); 1000 saturates to 240; 3e-4 → 0 (below half of 2^-10)
      expect(Array.from(y.toArray())).toEqual([1, 240, -0.3125, 0]);
      T.backward(T.sum(T.mul(y, T.tensor([0.1, 0.2, 0.3, 0.4], [4]))));
      expect(Array.from(x.grad!.toArray())).toEqual(Array.from(Float32Array.from([0.1, 0.2, 0.3, 0.4])));
      x.grad = null;
    });
  });

  it('backward-only quantisation rounds just the incoming gradient', () => {
    T.tidy(() => {
      const x = T.tensor([0.1, 0.2], [2]);
      x.requiresGrad = true;
      const y = T.quantise(x, null, e5m2);
      expect(Array.from(y.toArray())).toEqual(Array.from(Float32Array.from([0.1, 0.2])));
      T.backward(T.sum(T.mul(y, T.tensor([1.1, 100000], [2]))));
      // E5M2 (paper): 1.1 → 1 (grid 0.25 in [1,2)); 100000 saturates to 57344
      expect(Array.from(x.grad!.toArray())).toEqual([1, 57344]);
      x.grad = null;
    });
  });

  it('stochastic rounding draws fresh numbers each step through the device epoch counter', () => {
    const ctx = new T.RandomContext(7);
    T.setRandomContext(ctx);
    const spec = { format: parseFormat('e4m3-paper'), rounding: 'stochastic' as const };
    const draw = () => T.tidy(() => Array.from(T.quantise(T.full([64], 1.03), spec).toArray()));
    ctx.beginStep();
    const first = draw();
    const again = T.tidy(() => {
      const c2 = new T.RandomContext(7);
      T.setRandomContext(c2);
      c2.beginStep();
      return draw();
    });
    expect(again).toEqual(first);
    T.setRandomContext(ctx);
    ctx.beginStep();
    const second = draw();
    expect(second).not.toEqual(first);
    for (const v of [...first, ...second]) expect([1, 1.125]).toContain(v);
    T.setRandomContext(new T.RandomContext(0));
  });
});
