/** T.UnaryOptions.readFormat: the values of a rounding pass before the op and one on its gradient, without the passes. */
import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import { param, values } from './gradcheck.ts';

describe('unary ops that read rounded (readFormat)', () => {
  for (const format of ['bf16', 'fp16'] as const) {
    it(`${format}: equal to quantise → op → quantise-the-gradient, forward and backward, bit for bit`, () => {
      const spec: T.CastSpec = { format: parseFormat(format), rounding: 'nearest', overflow: 'inf' };
      const run = (fused: boolean) =>
        T.tidy(() => {
          const x = param(values(257, 4, -3, 3), [257]);
          const w = T.tensor(values(257, 5), [257]);
          const y = fused ? T.gelu(x, { inScale: 0.8, scale: 1.3, readFormat: format }) : T.quantise(T.gelu(T.quantise(x, spec, null), { inScale: 0.8, scale: 1.3 }), null, spec);
          T.backward(T.sum(T.mul(y, w)));
          return [y.toFloat32Array(), x.grad!.toFloat32Array()];
        });
      const [fusedOut, fusedGrad] = run(true);
      const [passesOut, passesGrad] = run(false);
      expect(fusedOut).toEqual(passesOut);
      expect(fusedGrad).toEqual(passesGrad);
      // …and not what the op gives on the values as stored.
      const plain = T.tidy(() => T.gelu(T.tensor(values(257, 4, -3, 3), [257]), { inScale: 0.8, scale: 1.3 }).toFloat32Array());
      expect(plain).not.toEqual(fusedOut);
    });
  }

  it('addLayerNorm: a read rounded and the normed gradient read rounded equal the explicit rounding ops, bit for bit', () => {
    const spec: T.CastSpec = { format: parseFormat('bf16'), rounding: 'nearest', overflow: 'inf' };
    const run = (fused: boolean) =>
      T.tidy(() => {
        const a = param(values(6 * 16, 7, -2, 2), [6, 16]);
        const b = param(values(6 * 16, 8, -2, 2), [6, 16]);
        const gamma = param(values(16, 9, 0.5, 1.5), [16]);
        const w = T.tensor(values(6 * 16, 10), [6, 16]);
        const { sum, normed } = fused
          ? T.addLayerNorm(a, b, { scaleA: 0.7 }, gamma, null, { aReadFormat: 'bf16', gradReadFormat: 'bf16' })
          : (({ sum: s, normed: n }) => ({ sum: s, normed: T.quantise(n, null, spec) }))(T.addLayerNorm(T.quantise(a, spec, null), b, { scaleA: 0.7 }, gamma, null));
        T.backward(T.add(T.sum(T.mul(normed, w)), T.sum(T.mul(sum, w))));
        return [sum, normed, a.grad!, b.grad!, gamma.grad!].map((t) => t.toFloat32Array());
      });
    const fused = run(true);
    const explicit = run(false);
    fused.forEach((x, i) => expect(x, `array ${i}`).toEqual(explicit[i]));
  });
});
