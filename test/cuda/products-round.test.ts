/**
 * Native FP16/BF16 products that round their own operands (precision.linear / linearInput,
 * GemmParams.roundInputs) on CUDA: a reference-model step gives the loss and gradients of the
 * separate rounding passes to the last bit. Every product of this size runs on cuBLAS either way
 * (gemm_small would sum in another order), so only where the rounding happens differs.
 */
import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import * as nn from '../../src/nn/index.ts';
import { ReferenceGpt } from '../../src/models/gpt/model.ts';
import { cuda, noCudaReason } from './helpers.ts';

describe.skipIf(cuda === null)(`products that round their operands, on CUDA ${noCudaReason}`, () => {
  for (const mode of ['bf16', 'fp16'] as const) {
    it(`${mode}: the reference model's step is bit for bit that of the separate rounding passes, with or without 16-bit operand storage`, () => {
      const before = T.defaultBackend();
      T.setDefaultBackend(cuda!);
      try {
        const step = (productsRoundOperands: boolean, operands16 = true) =>
          T.tidy(() => {
            T.setRandomContext(new T.RandomContext(5));
            const precision = nn.precisionPolicy({ mode, fp8_family: 'paper', rounding: 'nearest', master_weights: false, matmul: 'native', allow_tf32: false }, { productsRoundOperands });
            const model = new ReferenceGpt({ vocab: 64, hidden: 128, depth: 2, heads: 2, sequenceLength: 64, scaling: nn.REGULAR, precision, seed: 3, operands16 });
            const ids = T.tensor(Int32Array.from({ length: 4 * 64 }, (_, i) => (i * 7) % 64), [4, 64]);
            const loss = model.loss(ids, ids);
            T.backward(loss);
            const arrays = [loss.toFloat32Array(), ...model.parameters.map((p) => p.tensor.grad!.toFloat32Array())];
            model.dispose();
            return arrays;
          });
        const fused = step(true);
        const separate = step(false);
        fused.forEach((x, i) => expect(x, `array ${i}`).toEqual(separate[i]));
        // Operands read from the producers' 16-bit storage instead of packed: the same step.
        const packed = step(true, false);
        packed.forEach((x, i) => expect(x, `array ${i} (operands packed)`).toEqual(separate[i]));
      } finally {
        T.setDefaultBackend(before);
      }
    });
  }
});
