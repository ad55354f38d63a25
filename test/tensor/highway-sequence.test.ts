import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import { buildCharLM } from '../../src/models/charlm/index.ts';
import { disposeBatch, tinyBatch, tinyConfig, VOCAB } from '../models/helpers.ts';
import { gradcheck, param, values } from './gradcheck.ts';

const B = 3;
const L = 6;
const H = 5;
const SCALES = { scale: 0.7, gradScaleState: 0.9, gradScaleWeight: 1.3 };
const FP16_NEAREST: T.CastSpec = { format: parseFormat('fp16'), rounding: 'nearest', overflow: 'inf' };
const FP16_STOCHASTIC: T.CastSpec = { ...FP16_NEAREST, rounding: 'stochastic' };

/** The loop the sequence op replaces: a scaled matmul, its output rounding and a highwayStep per timestep. */
function perStep(round: T.CastSpec | null) {
  return (projected: T.Tensor, weight: T.Tensor, initial: T.Tensor): T.Tensor => {
    const states: T.Tensor[] = [];
    let state = initial;
    for (let t = 0; t < L; t++) {
      const product = T.matmul(state, weight, { scale: SCALES.scale, gradScaleA: SCALES.gradScaleState, gradScaleB: SCALES.gradScaleWeight });
      state = T.highwayStep(projected, t, round ? T.quantise(product, round, round) : product, state, round);
      states.push(T.reshape(state, [B, 1, H]));
    }
    return T.concat(states, 1);
  };
}

const sequence = (round: T.CastSpec | null) => (p: T.Tensor, w: T.Tensor, h: T.Tensor) => T.highwaySequence(p, w, h, { ...SCALES, round });

/** Values and gradients (of Σ out·w) for fixed inputs, in a random context of their own. */
function valuesAndGradients(form: (p: T.Tensor, w: T.Tensor, h: T.Tensor) => T.Tensor, seed = 77): Float32Array[] {
  const previous = T.randomContext();
  const ctx = new T.RandomContext(seed);
  T.setRandomContext(ctx);
  try {
    ctx.beginStep();
    return T.tidy(() => {
      const inputs = [param(values(B * L * 2 * H, 3, -2, 2), [B, L, 2 * H]), param(values(H * 2 * H, 4, -0.6, 0.6), [H, 2 * H]), param(values(B * H, 5), [B, H])];
      const out = form(inputs[0]!, inputs[1]!, inputs[2]!);
      T.backward(T.sum(T.mul(out, T.tensor(values(out.size, 6), [...out.shape]))));
      return [out.toFloat32Array(), ...inputs.map((x) => x.grad!.toFloat32Array())];
    });
  } finally {
    T.setRandomContext(previous);
  }
}

/** Largest |actual − expected| relative to max(1, |expected|). */
function worstDifference(actual: Float32Array, expected: Float32Array): number {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / Math.max(1, Math.abs(expected[i]!)));
  return worst;
}

const NAMES = ['states', 'gradient of projected', 'gradient of the weight', 'gradient of the initial state'];

describe('highwaySequence: a whole RHN recurrence as one op', () => {
  it('FP32: gives the per-step loop’s states and gradients (up to the recurrent product’s summation order)', () => {
    const got = valuesAndGradients(sequence(null));
    const want = valuesAndGradients(perStep(null));
    got.forEach((g, i) => expect(worstDifference(g, want[i]!), NAMES[i]).toBeLessThan(i === 0 ? 1e-6 : 1e-5));
    // a real recurrence: later states depend on the weight, so its gradient is not zero
    expect(got[2]!.some((g) => Math.abs(g) > 1e-3)).toBe(true);
  });

  it('FP16, nearest: the per-step loop’s values, where a different summation order flips a rounding at most', () => {
    const got = valuesAndGradients(sequence(FP16_NEAREST));
    const want = valuesAndGradients(perStep(FP16_NEAREST));
    // every state is an FP16 value
    for (const v of got[0]!) expect(Math.fround(v)).toBe(v);
    expect(got[0]!.every((v, i) => v === want[0]![i] || Math.abs(v - want[0]![i]!) <= 2 ** -10 * Math.max(Math.abs(v), 2 ** -14))).toBe(true);
    got.forEach((g, i) => expect(worstDifference(g, want[i]!), NAMES[i]).toBeLessThan(1e-2));
    expect(worstDifference(got[0]!, valuesAndGradients(sequence(null))[0]!)).toBeGreaterThan(0);
  });

  it('FP16, stochastic: repeatable for one random context, different from nearest, close to the loop', () => {
    const first = valuesAndGradients(sequence(FP16_STOCHASTIC), 5);
    const again = valuesAndGradients(sequence(FP16_STOCHASTIC), 5);
    const otherSeed = valuesAndGradients(sequence(FP16_STOCHASTIC), 6);
    first.forEach((g, i) => expect(g, NAMES[i]).toEqual(again[i]));
    expect(worstDifference(first[0]!, otherSeed[0]!)).toBeGreaterThan(0);
    expect(worstDifference(first[0]!, valuesAndGradients(sequence(FP16_NEAREST))[0]!)).toBeGreaterThan(0);
    const loop = valuesAndGradients(perStep(FP16_STOCHASTIC), 5);
    first.forEach((g, i) => expect(worstDifference(g, loop[i]!), NAMES[i]).toBeLessThan(2e-2));
  });

  it('matches central differences (FP32)', () => {
    gradcheck([[2, 4, 6], [3, 6], [2, 3]], (p, w, h) => T.highwaySequence(p, w, h, { scale: 1, gradScaleState: 1, gradScaleWeight: 1, round: null }));
  });

  it('refuses mismatched shapes', () => {
    const p = T.zeros([2, 3, 8]);
    const options = { ...SCALES, round: null };
    expect(() => T.highwaySequence(p, T.zeros([4, 6]), T.zeros([2, 4]), options)).toThrow(/do not fit/);
    expect(() => T.highwaySequence(p, T.zeros([4, 8]), T.zeros([3, 4]), options)).toThrow(/do not fit/);
  });

  for (const precision of ['fp32', 'fp16'] as const) {
    it(`a ${precision} charlm-rnn (nearest) trains the same through the sequence op and through per-step ops`, () => {
      const run = (whole: boolean) => {
        const previous = process.env.REPRO_RHN_SEQUENCE;
        process.env.REPRO_RHN_SEQUENCE = whole ? '1' : '0';
        try {
          const config = tinyConfig('rnn', 'unit', 'paper-charlm', [`precision.mode=${precision}`, 'precision.rounding=nearest']);
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
      const whole = run(true);
      const steps = run(false);
      const tolerance = precision === 'fp32' ? 1e-4 : 2e-2;
      expect(Math.abs(whole.loss - steps.loss)).toBeLessThan(tolerance * Math.abs(steps.loss));
      expect(whole.grads.map(([name]) => name)).toEqual(steps.grads.map(([name]) => name));
      whole.grads.forEach(([name, g], i) => expect(worstDifference(g, steps.grads[i]![1]), `gradient of ${name}`).toBeLessThan(tolerance));
    });
  }
});
