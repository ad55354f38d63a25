/**
 * PrecisionPolicy.linear / linearInput with native FP16/BF16 and nearest rounding: the products
 * round the operands they read, so the separate rounding passes go, and nothing else changes.
 */
import { describe, expect, it, vi } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import * as nn from '../../src/nn/index.ts';
import type { GemmParams } from '../../src/backend/backend.ts';
import { ReferenceGpt } from '../../src/models/gpt/model.ts';

type Mode = 'fp16' | 'bf16';

function policy(mode: Mode, productsRoundOperands: boolean, rounding: 'nearest' | 'stochastic' = 'nearest', matmul: 'native' | 'simulated' = 'native') {
  return nn.precisionPolicy({ mode, fp8_family: 'paper', rounding, master_weights: false, matmul, allow_tf32: false }, { productsRoundOperands });
}

/**
 * Loss and every parameter gradient of one step of a small reference model, the quantise calls it
 * made, and how many float32 operands its rounding products read (each one a pack on CUDA).
 */
function step(precision: nn.PrecisionPolicy, scaling: nn.Scaling, operands16 = true) {
  return T.tidy(() => {
    const backend = T.defaultBackend();
    const quantise = vi.spyOn(backend, 'quantise');
    const gemm = vi.spyOn(backend, 'gemm');
    const model = new ReferenceGpt({ vocab: 13, hidden: 16, depth: 2, heads: 2, sequenceLength: 9, scaling, precision, seed: 3, operands16 });
    const ids = T.tensor(Int32Array.from({ length: 18 }, (_, i) => (i * 5) % 13), [2, 9]);
    const loss = model.loss(ids, ids);
    T.backward(loss);
    const arrays = [loss.toFloat32Array(), ...model.parameters.map((p) => p.tensor.grad!.toFloat32Array())];
    const roundings = quantise.mock.calls.length;
    const rounding = gemm.mock.calls.map(([p]) => p).filter((p: GemmParams) => p.roundInputs);
    const float32Operands = rounding.flatMap((p) => [p.a, p.b]).filter((s) => s.dtype === 'f32').length;
    const stored16 = rounding.flatMap((p) => [p.a, p.b]).filter((s) => s.dtype === precision.readFormat).length;
    const outputs16 = rounding.filter((p) => p.c.dtype === precision.readFormat).length;
    quantise.mockRestore();
    gemm.mockRestore();
    model.dispose();
    return { arrays, roundings, float32Operands, stored16, outputs16 };
  });
}

describe('products that round their own operands (precision.linear, linearInput)', () => {
  for (const mode of ['bf16', 'fp16'] as const) {
    for (const scaling of [nn.REGULAR, nn.unitScaling('umup')]) {
      it(`${mode} ${scaling.mode}: the reference model's loss and gradients are bit for bit those of the separate rounding passes, with fewer passes`, () => {
        const fused = step(policy(mode, true), scaling);
        const separate = step(policy(mode, false), scaling);
        fused.arrays.forEach((x, i) => expect(x, `array ${i}`).toEqual(separate.arrays[i]));
        // Per layer, forward: the two norm outputs, qkv, the attention output, the up projection,
        // the GELU output and the two branch outputs the residual adds read; backward: the
        // gradients at the four linear outputs, at the attention output, at the GELU output and at
        // the two norm outputs. Then the final norm's output both ways, the logits' gradient, and
        // the logits (written in 16 bits by their product: operands16).
        expect(separate.roundings - fused.roundings).toBe(2 * 16 + 4);
      });
    }
  }

  for (const mode of ['bf16', 'fp16'] as const) {
    it(`${mode}: with operands16 the values only products and rounding readers read live in 16-bit storage, and nothing else changes`, () => {
      const stored = step(policy(mode, true), nn.unitScaling('umup'), true);
      const float32 = step(policy(mode, true), nn.unitScaling('umup'), false);
      stored.arrays.forEach((x, i) => expect(x, `array ${i}`).toEqual(float32.arrays[i]));
      // 3 products per linear (forward, input and weight gradients), 4 linears a layer and the
      // readout: 2·(2·4·3 + 2·3) = 54 operands, all float32 without operands16, all 16-bit with
      // it: the up projection's incoming gradient comes from GELU in 16 bits, the qkv
      // projection's from the attention, the readout's from the cross-entropy, the output and
      // down projections' from the layer norms' backward (a 16-bit copy of the residual's).
      expect(float32.float32Operands).toBe(54);
      expect(float32.stored16).toBe(0);
      expect(float32.outputs16).toBe(0);
      expect(stored.float32Operands).toBe(0);
      expect(stored.stored16).toBe(54);
      // Per layer every linear's output and input gradient (what attention, GELU, the residual
      // adds and the layer norms read); the readout's too.
      expect(stored.outputs16).toBe(2 * 8 + 2);
    });
  }

  it('is on only for native products with nearest rounding', () => {
    expect(policy('bf16', true).readFormat).toBe('bf16');
    expect(policy('fp16', true).readFormat).toBe('fp16');
    expect(policy('bf16', false).readFormat).toBe(null);
    expect(policy('bf16', true, 'stochastic').readFormat).toBe(null);
    expect(policy('bf16', true, 'nearest', 'simulated').readFormat).toBe(null);
  });

  it('the CPU gemm rounds operands under roundInputs, and refuses it for other formats', () => {
    T.tidy(() => {
      const backend = T.defaultBackend();
      const a = T.tensor(Float32Array.of(1 + 2 ** -12, 3), [1, 2]);
      const b = T.tensor(Float32Array.of(1, 1 + 2 ** -10), [2, 1]);
      const c = T.zeros([1, 1]);
      const params = (roundInputs: boolean, inputFormat: GemmParams['inputFormat'] = 'bf16'): GemmParams => ({
        transA: false, transB: false, m: 1, n: 1, k: 2, alpha: 1, a: a.storage, aOffset: 0, lda: 2, b: b.storage, bOffset: 0, ldb: 1,
        beta: 0, c: c.storage, cOffset: 0, ldc: 1, batch: 1, strideA: 0, strideB: 0, strideC: 0, inputFormat, roundInputs,
      });
      backend.gemm(params(true));
      // BF16 keeps 8 significant bits: both small offsets round away, so 1·1 + 3·1.
      expect(c.toFloat32Array()[0]).toBe(4);
      backend.gemm(params(false));
      expect(c.toFloat32Array()[0]).toBe(Math.fround(Math.fround(1 + 2 ** -12) + Math.fround(3 * (1 + 2 ** -10))));
      expect(() => backend.gemm(params(true, 'e4m3'))).toThrow(/roundInputs needs inputFormat fp16 or bf16/);
    });
  });
});
