import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import type { Backend } from '../../src/backend/backend.ts';
import { loadExperiment } from '../../src/config/load.ts';
import { buildCharLM } from '../../src/models/charlm/index.ts';
import { ReferenceGpt } from '../../src/models/gpt/model.ts';
import * as nn from '../../src/nn/index.ts';
import { AdamW, zeroGradients } from '../../src/optim/index.ts';
import type { ModelParameter } from '../../src/models/types.ts';

/**
 * A CUDA graph can only capture a step that never copies between host and device and allocates
 * only memory it already used (design notes 2 and 3). This checks both on the CPU backend, for
 * every model and precision, so a violation shows up in CI without a GPU.
 */
function assertCapturable(parameters: readonly ModelParameter[], loss: () => T.Tensor): void {
  const backend: Backend = T.cpuBackend();
  const optimiser = new AdamW(parameters, { lr: 1e-3, lrDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  const step = () =>
    T.tidy(() => {
      T.randomContext().beginStep();
      zeroGradients(parameters);
      T.backward(loss());
      optimiser.step(1);
    });
  step();
  step();
  const reserved = backend.memoryStats().reservedBytes;
  const originals = { read: backend.read, write: backend.write };
  const forbid = (name: string) => () => {
    throw new Error(`${name} inside the training step`);
  };
  backend.read = forbid('read');
  backend.write = forbid('write');
  try {
    step();
  } finally {
    backend.read = originals.read;
    backend.write = originals.write;
    optimiser.dispose();
  }
  expect(backend.memoryStats().reservedBytes).toBe(reserved);
}

describe('a training step is capturable as a CUDA graph (no host copies, no new memory)', () => {
  const tiny = ['model.hidden=16', 'model.depth=2', 'data.sequences=2', 'data.sequence_length=12', 'data.overlap=4', 'model.attention.head_size=8', 'model.attention.frequencies=8', 'model.conv.groups=4'];
  for (const mixer of ['attention', 'conv', 'rnn'] as const) {
    it(`charlm-${mixer}, regular and unit, fp32 / fp16 / fp8`, () => {
      for (const precision of ['fp32', 'fp16', 'fp8'] as const) {
        for (const scaling of ['regular', 'unit'] as const) {
          const { config } = loadExperiment(`charlm-${mixer}`, tiny, { scaling, precision });
          const model = buildCharLM(config, 30, 1);
          const batch = T.persistent(() => ({ tokens: T.tensor(Int32Array.from({ length: 24 }, (_, i) => (i * 7) % 30), [2, 12]), mask: T.ones([2, 12]) }));
          assertCapturable(model.parameters, () => model.loss(batch, { training: true }).loss);
        }
      }
    });
  }

  it('charlm-rnn with nearest and stochastic fp16 rounding (the fused highway step)', () => {
    for (const rounding of ['nearest', 'stochastic'] as const) {
      for (const scaling of ['regular', 'unit'] as const) {
        const { config } = loadExperiment('charlm-rnn', [...tiny, `precision.rounding=${rounding}`], { scaling, precision: 'fp16' });
        const model = buildCharLM(config, 30, 1);
        const batch = T.persistent(() => ({ tokens: T.tensor(Int32Array.from({ length: 24 }, (_, i) => (i * 7) % 30), [2, 12]), mask: T.ones([2, 12]) }));
        assertCapturable(model.parameters, () => model.loss(batch, { training: true }).loss);
      }
    }
  });

  it('the reference GPT model, regular and unit (u-μP), fp32 / bf16 / fp8', () => {
    for (const mode of ['fp32', 'bf16', 'fp8'] as const) {
      for (const scaling of [nn.REGULAR, nn.unitScaling('umup')]) {
        const precision = nn.precisionPolicy({ mode, fp8_family: 'paper', rounding: 'stochastic', master_weights: false, matmul: 'native', allow_tf32: false });
        const model = new ReferenceGpt({ vocab: 20, hidden: 16, depth: 2, heads: 2, sequenceLength: 8, scaling, precision, seed: 1 });
        const ids = T.persistent(() => T.tensor(Int32Array.from({ length: 16 }, (_, i) => (i * 3) % 20), [2, 8]));
        assertCapturable(model.parameters, () => model.loss(ids, ids));
        model.dispose();
      }
    }
  });
});
