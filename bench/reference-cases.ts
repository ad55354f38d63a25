// The reference GPT model of ../shared/bench/pytorch-reference.md at its two sizes, regular and
// unit-scaled, FP32 and BF16, as benchmark cases.
import * as T from '../src/tensor/index.ts';
import * as nn from '../src/nn/index.ts';
import { ReferenceGpt } from '../src/models/gpt/model.ts';
import type { StepCase } from './charlm-cases.ts';

const SIZES = {
  paper: { hidden: 128, depth: 8, heads: 2, batch: 8, sequence: 256 },
  large: { hidden: 512, depth: 8, heads: 8, batch: 32, sequence: 256 },
} as const;
export const VOCAB = 5008;

function precision(mode: 'fp32' | 'bf16' | 'fp16' | 'fp8', native: boolean, productsRoundOperands: boolean): nn.PrecisionPolicy {
  return nn.precisionPolicy({ mode, fp8_family: 'paper', rounding: 'nearest', master_weights: false, matmul: native ? 'native' : 'simulated', allow_tf32: false }, { productsRoundOperands });
}

export function referenceCases(native: boolean): StepCase[] {
  const cases: StepCase[] = [];
  // BF16 four times, for side-by-side ratios: as the defaults run it (attention as PyTorch runs
  // it under autocast, norms and GELU writing 16-bit operands, the other linear operands rounded
  // by the products' packing), with the precision policy's float32 attention internals, with
  // float32 norm and GELU outputs packed by the products, and with separate rounding passes.
  const modes = [
    { mode: 'fp32', flashAttention16: true, productsRound: true, operands16: true, suffix: '' },
    { mode: 'bf16', flashAttention16: true, productsRound: true, operands16: true, suffix: '' },
    { mode: 'bf16', flashAttention16: false, productsRound: true, operands16: true, suffix: ' (fp32 attention)' },
    { mode: 'bf16', flashAttention16: true, productsRound: true, operands16: false, suffix: ' (operands packed)' },
    { mode: 'bf16', flashAttention16: true, productsRound: false, operands16: false, suffix: ' (separate roundings)' },
  ] as const;
  for (const size of ['paper', 'large'] as const) {
    for (const { mode, flashAttention16, productsRound, operands16, suffix } of modes) {
      for (const variant of ['regular', 'unit'] as const) {
        const s = SIZES[size];
        cases.push({
          key: `${size} reference ${variant} ${mode}${suffix}`,
          tokens: s.batch * s.sequence,
          build: () => {
            const model = new ReferenceGpt({
              vocab: VOCAB,
              hidden: s.hidden,
              depth: s.depth,
              heads: s.heads,
              sequenceLength: s.sequence,
              scaling: variant === 'unit' ? nn.unitScaling('umup') : nn.REGULAR,
              precision: precision(mode, native, productsRound),
              seed: 1,
              flashAttention16,
              operands16,
            });
            const ids = (stream: number) =>
              T.persistent(() => {
                const u = T.randomUniform([s.batch, s.sequence], 3, stream, 0, VOCAB);
                const host = Int32Array.from(u.toFloat32Array(), (v) => Math.min(VOCAB - 1, Math.floor(v)));
                u.dispose();
                return T.tensor(host, [s.batch, s.sequence]);
              });
            const inputs = ids(1);
            const labels = ids(2);
            return {
              parameters: model.parameters,
              loss: () => model.loss(inputs, labels),
              dispose: () => {
                model.dispose();
                inputs.dispose();
                labels.dispose();
              },
            };
          },
        });
      }
    }
  }
  return cases;
}

