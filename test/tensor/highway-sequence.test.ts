import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import { buildCharLM } from '../../src/models/charlm/index.ts';
import { disposeBatch, tinyBatch, tinyConfig, VOCAB } from '../models/helpers.ts';
import { gradcheck, param, values } from './gradcheck.ts';

const B = 3;
const L = 6;
const H = 5;
const SCALES = { scale: 0.7, gradScaleState: 0.9, gradScaleWeight: 1.3 };

/** The loop the sequence op replaces: a scaled matmul and a highwayStep per timestep. */
function perStep(projected: T.Tensor, weight: T.Tensor, initial: T.Tensor): T.Tensor {
  const states: T.Tensor[] = [];
  let state = initial;
  for (let t = 0; t < L; t++) {
    const recurrent = T.matmul(state, weight, { scale: SCALES.scale, gradScaleA: SCALES.gradScaleState, gradScaleB: SCALES.gradScaleWeight });
    state = T.highwayStep(projected, t, recurrent, state, null);
    states.push(T.reshape(state, [B, 1, H]));
  }
  return T.concat(states, 1);
}

/** Values and gradients (of Σ out·w) of both forms for the same inputs. */
function valuesAndGradients(form: (p: T.Tensor, w: T.Tensor, h: T.Tensor) => T.Tensor): Float32Array[] {
  return T.tidy(() => {
    const inputs = [
      param(values(B * L * 2 * H, 3, -2, 2), [B, L, 2 * H]),
      param(values(H * 2 * H, 4, -0.6, 0.6), [H, 2 * H]),
      param(values(B * H, 5), [B, H]),
    ];
    const out = form(inputs[0]!, inputs[1]!, inputs[2]!);
    T.backward(T.sum(T.mul(out, T.tensor(values(out.size, 6), [...out.shape]))));
    return [out.toFloat32Array(), ...inputs.map((x) => x.grad!.toFloat32Array())];
  });
}

function expectClose(actual: Float32Array, expected: Float32Array, tolerance: number, label: string): void {
  expect(actual.length, label).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / Math.max(1, Math.abs(expected[i]!)));
  expect(worst, label).toBeLessThan(tolerance);
}

describe('highwaySequence: a whole FP32 RHN recurrence as one op', () => {
  it('gives the per-step loop’s states and gradients (up to the recurrent product’s summation order)', () => {
    const [out, gProjected, gWeight, gInitial] = valuesAndGradients((p, w, h) => T.highwaySequence(p, w, h, SCALES));
    const [refOut, refProjected, refWeight, refInitial] = valuesAndGradients(perStep);
    expectClose(out!, refOut!, 1e-6, 'states');
    expectClose(gProjected!, refProjected!, 1e-5, 'gradient of projected');
    expectClose(gWeight!, refWeight!, 1e-5, 'gradient of the weight');
    expectClose(gInitial!, refInitial!, 1e-5, 'gradient of the initial state');
    // a real recurrence: later states depend on the weight, so its gradient is not zero
    expect(gWeight!.some((g) => Math.abs(g) > 1e-3)).toBe(true);
  });

  it('matches central differences', () => {
    gradcheck([[2, 4, 6], [3, 6], [2, 3]], (p, w, h) => T.highwaySequence(p, w, h, { scale: 1, gradScaleState: 1, gradScaleWeight: 1 }));
  });

  it('refuses mismatched shapes', () => {
    const p = T.zeros([2, 3, 8]);
    expect(() => T.highwaySequence(p, T.zeros([4, 6]), T.zeros([2, 4]), SCALES)).toThrow(/do not fit/);
    expect(() => T.highwaySequence(p, T.zeros([4, 8]), T.zeros([3, 4]), SCALES)).toThrow(/do not fit/);
  });

  it('an FP32 charlm-rnn trains the same through the sequence op and through per-step ops', () => {
    const run = (sequence: boolean) => {
      const previous = process.env.REPRO_RHN_SEQUENCE;
      process.env.REPRO_RHN_SEQUENCE = sequence ? '1' : '0';
      try {
        const config = tinyConfig('rnn', 'unit', 'paper-charlm');
        const model = buildCharLM(config, VOCAB, 3);
        const batch = tinyBatch(config);
        try {
          return T.tidy(() => {
            const { loss } = model.loss(batch, { training: true });
            T.backward(loss);
            return { loss: loss.item(), grads: model.parameters.map((p) => [p.name, p.tensor.grad!.toFloat32Array()] as const) };
          });
        } finally {
          disposeBatch(batch);
          model.dispose();
        }
      } finally {
        if (previous === undefined) delete process.env.REPRO_RHN_SEQUENCE;
        else process.env.REPRO_RHN_SEQUENCE = previous;
      }
    };
    const sequence = run(true);
    const steps = run(false);
    expect(Math.abs(sequence.loss - steps.loss)).toBeLessThan(1e-5 * Math.abs(steps.loss));
    expect(sequence.grads.map(([name]) => name)).toEqual(steps.grads.map(([name]) => name));
    sequence.grads.forEach(([name, g], i) => expectClose(g, steps.grads[i]![1], 1e-4, `gradient of ${name}`));
  });
});
