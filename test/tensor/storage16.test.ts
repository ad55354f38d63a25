/**
 * 16-bit storage (DType 'bf16' / 'fp16'): outputs that only products read, written rounded by
 * their producers, and weight copies that products read in place of the weight (readB). The
 * values are those of float32 outputs that the products round as they read them, bit for bit.
 */
import { describe, expect, it, vi } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import { param, values } from './gradcheck.ts';

const FORMATS = ['bf16', 'fp16'] as const;
const spec = (format: T.Format16): T.CastSpec => ({ format: parseFormat(format), rounding: 'nearest', overflow: 'inf' });

describe('16-bit storage', () => {
  for (const format of FORMATS) {
    it(`${format}: copy16 holds the values rounded to nearest-even, in 2 bytes an element`, () => {
      T.tidy(() => {
        const x = T.tensor(Float32Array.of(1 + 2 ** -9, -3.0001, 1e6, 7e4, 2 ** -30, Infinity, NaN, -0), [8]);
        const backend = T.defaultBackend();
        const before = backend.memoryStats().allocatedBytes;
        const copy = T.copy16(x, format);
        expect(backend.memoryStats().allocatedBytes - before).toBe(16);
        expect(copy.dtype).toBe(format);
        expect(copy.toFloat32Array()).toEqual(T.quantise(x, spec(format), null).toFloat32Array());
      });
    });

    it(`${format}: GELU and layer norm with outputFormat write the rounded float32 results`, () => {
      T.tidy(() => {
        const x = T.tensor(values(6 * 40, 3, -3, 3), [6, 40]);
        const gamma = T.tensor(values(40, 4, 0.5, 1.5), [40]);
        const beta = T.tensor(values(40, 5, -0.5, 0.5), [40]);
        const gelu = T.gelu(x, { scale: 1.7, outputFormat: format });
        expect(gelu.dtype).toBe(format);
        expect(gelu.toFloat32Array()).toEqual(T.quantise(T.gelu(x, { scale: 1.7 }), spec(format), null).toFloat32Array());
        const normed = T.layerNorm(x, gamma, beta, { outputFormat: format });
        expect(normed.dtype).toBe(format);
        expect(normed.toFloat32Array()).toEqual(T.quantise(T.layerNorm(x, gamma, beta), spec(format), null).toFloat32Array());
      });
    });

    it(`${format}: a product of 16-bit operands (a 16-bit input, readB) equals the rounding product of the float32 values, forward and backward`, () => {
      const run = (stored: boolean) =>
        T.tidy(() => {
          const x = param(values(5 * 24, 6, -2, 2), [5, 24]);
          const w = param(values(7 * 24, 7, -1, 1), [7, 24]);
          const probe = T.tensor(values(5 * 7, 8), [5, 7]);
          // The gradient reaching x passes the float32 GELU backward either way.
          const h = T.gelu(x, stored ? { outputFormat: format } : {});
          const options = { transB: true, scale: 0.3, gradScaleA: 0.4, gradScaleB: 0.5, inputFormat: format, roundInputs: true } as const;
          const y = T.matmul(h, w, stored ? { ...options, readB: T.copy16(w, format) } : options);
          T.backward(T.sum(T.mul(y, probe)));
          return [y, x.grad!, w.grad!].map((t) => t.toFloat32Array());
        });
      const stored = run(true);
      const rounding = run(false);
      stored.forEach((a, i) => expect(a, `array ${i}`).toEqual(rounding[i]));
    });
  }

  for (const format of FORMATS) {
    it(`${format}: gradStorage16 puts the gradients between products and GELU in 16 bits, bit for bit the float32 ones; a value read twice keeps float32`, () => {
      const run = (grad16: boolean, readTwice = false) =>
        T.tidy(() => {
          const backend = T.defaultBackend();
          const unaryGrad = vi.spyOn(backend, 'unaryGrad');
          const x = param(values(6 * 16, 1, -2, 2), [6, 16]);
          const w1 = param(values(32 * 16, 2), [32, 16]);
          const w2 = param(values(8 * 32, 3), [8, 32]);
          const linear = { transB: true, inputFormat: format, roundInputs: true, gradStorage16: grad16 } as const;
          const up = T.matmul(x, w1, { ...linear, outputFormat: grad16 ? format : undefined });
          const h = T.gelu(up, { readFormat: format, outputFormat: grad16 ? format : undefined, gradStorage16: grad16 });
          let y = T.matmul(h, w2, linear);
          if (readTwice) y = T.add(T.sum(y), T.sum(T.matmul(h, w2, linear)));
          T.backward(T.sum(T.mul(y, T.tensor(values(y.size, 4), y.shape))));
          const [, , gradOut, gradX] = unaryGrad.mock.calls[0]!;
          unaryGrad.mockRestore();
          return { arrays: [x.grad!, w1.grad!, w2.grad!].map((t) => t.toFloat32Array()), types: [gradOut.dtype, gradX.dtype] };
        });
      const stored = run(true);
      const float32 = run(false);
      expect(stored.types).toEqual([format, format]);
      expect(float32.types).toEqual(['f32', 'f32']);
      stored.arrays.forEach((a, i) => expect(a, `array ${i}`).toEqual(float32.arrays[i]));
      // h read by two products: its gradient is a sum, so float32; up's still 16 bits.
      expect(run(true, true).types).toEqual(['f32', format]);
    });
  }

  it('readB is what the products read: another stand-in changes the output and the input gradient, not the weight gradient', () => {
    const run = (standIn: Float32Array) =>
      T.tidy(() => {
        const x = param(values(3 * 8, 1), [3, 8]);
        const w = param(values(8 * 4, 2), [8, 4]);
        const y = T.matmul(x, w, { inputFormat: 'bf16', roundInputs: true, readB: T.copy16(T.tensor(standIn, [8, 4]), 'bf16') });
        T.backward(T.sum(T.mul(y, T.tensor(values(3 * 4, 3), [3, 4]))));
        return [y, x.grad!, w.grad!].map((t) => t.toFloat32Array());
      });
    const [y1, gx1, gw1] = run(values(8 * 4, 2));
    const [y2, gx2, gw2] = run(values(8 * 4, 9));
    expect(y2).not.toEqual(y1);
    expect(gx2).not.toEqual(gx1);
    expect(gw2).toEqual(gw1);
  });

  it('copies16 makes copy16 of every tensor in one call, and refuses a target written twice or read', () => {
    T.tidy(() => {
      const xs = [T.tensor(values(5, 1), [5]), T.tensor(values(4099, 2, -70000, 70000), [4099]), T.tensor(values(1, 3), [1])];
      T.copies16(xs, 'fp16').forEach((c, i) => expect(c.toFloat32Array()).toEqual(T.copy16(xs[i]!, 'fp16').toFloat32Array()));
      const backend = T.defaultBackend();
      const [a, b] = [T.empty([4], 'bf16'), T.tensor(values(4, 4), [4])];
      expect(() => backend.copies16([{ src: b.storage, dst: a.storage, n: 4 }, { src: b.storage, dst: a.storage, n: 4 }])).toThrow(/appears twice/);
      expect(() => backend.copies16([{ src: b.storage, dst: a.storage, n: 4 }, { src: b.storage, dst: T.empty([4], 'fp16').storage, n: 4 }])).toThrow(/one format/);
    });
  });

  it('writing into 16-bit storage rounds; only the kernels that say so accept it', () => {
    T.tidy(() => {
      const t = T.tensor(Float32Array.of(1 + 2 ** -9, 3), [2], { dtype: 'bf16' });
      expect(t.toFloat32Array()).toEqual(Float32Array.of(1, 3));
      expect(T.full([3], 1 + 2 ** -9, 'bf16').toFloat32Array()).toEqual(Float32Array.of(1, 1, 1));
      expect(() => T.exp(t)).toThrow(/bf16 storage, which only copy, relu, gelu, geluTanh take/);
      const w = T.tensor(Float32Array.of(1, 2, 3, 4), [2, 2]);
      expect(() => T.matmul(T.reshape(t, [1, 2]), w)).toThrow(/bf16 storage, but the products read fp32/);
      expect(() => T.matmul(w, w, { inputFormat: 'fp16', roundInputs: true, readB: T.copy16(w, 'bf16') })).toThrow(/bf16 storage, but the products read fp16/);
      expect(() => T.matmul(w, w, { inputFormat: 'bf16', readB: T.copy16(T.reshape(w, [4, 1]), 'bf16') })).toThrow(/does not stand in/);
    });
  });
});
