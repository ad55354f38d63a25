// The paper's char-LMs (experiments/charlm: attention, conv and RNN mixers at hidden 128, batch
// 8×256) as benchmark cases, regular and unit-scaled, in FP32, FP16 and FP8.
import * as T from '../src/tensor/index.ts';
import type { ModelParameter } from '../src/models/types.ts';
import { loadExperiment } from '../src/config/load.ts';
import { buildCharLM } from '../src/models/charlm/index.ts';
import { AdamW, zeroGradients } from '../src/optim/index.ts';

export interface StepCase {
  readonly key: string;
  readonly tokens: number;
  build(): { parameters: readonly ModelParameter[]; loss: () => T.Tensor; dispose: () => void };
}

/** The full training step every benchmark times: zero grads, forward, loss, backward, AdamW. */
export function trainingStep(built: ReturnType<StepCase['build']>): { step: () => void; dispose: () => void } {
  const optimiser = new AdamW(built.parameters, { lr: 1e-3, lrDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  const step = () =>
    T.tidy(() => {
      T.randomContext().beginStep();
      zeroGradients(built.parameters);
      T.backward(built.loss());
      optimiser.step(1);
    });
  return { step, dispose: () => optimiser.dispose() };
}

/** WikiText-103's character vocabulary is about 5,000 (experiments.md §A2); the reference uses 5008. */
const VOCAB = 5008;

export async function benchCharLmCases(native: boolean): Promise<StepCase[]> {
  const cases: StepCase[] = [];
  for (const mixer of ['attention', 'conv', 'rnn'] as const) {
    for (const precision of ['fp32', 'fp16', 'fp8'] as const) {
      for (const scaling of ['regular', 'unit'] as const) {
        const { config } = loadExperiment(`charlm-${mixer}`, [`precision.matmul=${native ? 'native' : 'simulated'}`], { scaling, precision, device: 'auto' });
        const { sequences, sequence_length: length } = config.data;
        cases.push({
          key: `paper charlm-${mixer} ${scaling} ${precision}`,
          tokens: sequences * length,
          build: () => {
            const model = buildCharLM(config, VOCAB, 1);
            const batch = T.persistent(() => {
              const u = T.randomUniform([sequences, length], 4, 1, 0, VOCAB);
              const ids = Int32Array.from(u.toFloat32Array(), (v) => Math.min(VOCAB - 1, Math.floor(v)));
              u.dispose();
              return { tokens: T.tensor(ids, [sequences, length]), mask: T.ones([sequences, length]) };
            });
            return {
              parameters: model.parameters,
              loss: () => model.loss(batch, { training: true }).loss,
              dispose: () => {
                for (const p of model.parameters) {
                  p.tensor.grad?.dispose();
                  p.tensor.dispose();
                }
                batch.tokens.dispose();
                batch.mask.dispose();
              },
            };
          },
        });
      }
    }
  }
  return cases;
}
