import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import * as nn from '../../src/nn/index.ts';
import { buildCharLM } from '../../src/models/charlm/index.ts';
import { disposeBatch, tinyBatch, tinyConfig, VOCAB } from '../models/helpers.ts';
import { gradcheck, values } from './gradcheck.ts';

type Mode = 'fp32' | 'fp16' | 'bf16' | 'fp8';
type Rounding = 'nearest' | 'stochastic';

function policyOf(mode: Mode, rounding: Rounding = 'nearest'): nn.PrecisionPolicy {
  return nn.precisionPolicy({ mode, fp8_family: 'paper', rounding, master_weights: false, matmul: 'simulated', allow_tf32: false });
}

/**
 * fn in a random context of its own, inside its second training step (epoch 2, stream ids from
 * the start), as the trainer runs a step; also returns the stream id the context would hand out
 * next, so two runs that drew different numbers of streams differ there.
 */
function inStep<R extends object>(fn: () => R): R & { nextStream: number } {
  const previous = T.randomContext();
  const ctx = new T.RandomContext(12345);
  T.setRandomContext(ctx);
  try {
    ctx.beginStep();
    ctx.nextStream();
    ctx.beginStep();
    const result = fn();
    return { ...result, nextStream: ctx.nextStream() };
  } finally {
    T.setRandomContext(previous);
  }
}

/** The Recurrent Highway Network step exactly as RecurrentHighwayLayer wrote it op by op. */
function unfusedStep(byStep: T.Tensor, t: number, recurrent: T.Tensor, state: T.Tensor, out: (x: T.Tensor) => T.Tensor): T.Tensor {
  const [B, H] = state.shape;
  const pre = out(T.add(T.reshape(T.slice(byStep, 0, t, t + 1), [B, 2 * H]), recurrent));
  const candidate = out(T.tanh(T.slice(pre, 1, 0, H)));
  const update = out(T.sigmoid(T.slice(pre, 1, H, 2 * H)));
  const step = out(T.mul(update, out(T.sub(candidate, state))));
  return out(T.add(state, step));
}

/** Fails listing the first differing elements unless a and b have the same bits (−0 and NaN payloads included). */
function expectSameBits(a: Float32Array, b: Float32Array, label: string): void {
  expect(a.length, label).toBe(b.length);
  const ia = new Int32Array(a.buffer, a.byteOffset, a.length);
  const ib = new Int32Array(b.buffer, b.byteOffset, b.length);
  const diffs: string[] = [];
  let count = 0;
  for (let i = 0; i < ia.length; i++) {
    if (ia[i] === ib[i]) continue;
    count++;
    if (diffs.length < 5) diffs.push(`[${i}] ${a[i]} (0x${(ia[i] >>> 0).toString(16)}) vs ${b[i]} (0x${(ib[i] >>> 0).toString(16)})`);
  }
  expect(count === 0 ? '' : `${label}: ${count} of ${a.length} differ: ${diffs.join('; ')}`).toBe('');
}

function leaf(data: Float32Array, shape: number[]): T.Tensor {
  const t = T.tensor(data, shape);
  t.requiresGrad = true;
  return t;
}

/**
 * Loss weights with zeros (±0 gradients), a wide magnitude range and, for fp16, values that
 * overflow the format in the backward pass.
 */
function lossWeights(n: number, seed: number, huge: boolean): Float32Array {
  const w = values(n, seed, -2, 2);
  for (let i = 0; i < n; i += 7) w[i] = 0;
  for (let i = 3; i < n; i += 11) w[i] *= 1e-6;
  for (let i = 5; i < n; i += 13) w[i] *= huge ? 1e5 : 300;
  return w;
}

interface Run {
  readonly states: Float32Array;
  readonly grads: Float32Array[];
  readonly nextStream?: number;
}

/**
 * The layer's recurrence over L steps from leaves (projection input, state weight, initial
 * state): projected is an intermediate whose gradient collects one slot per step, and the state's
 * gradient accumulates its gemm and next-step contributions, as in the model.
 */
function layerLike(mode: Mode, fused: boolean, B: number, L: number, H: number, rounding: Rounding = 'nearest'): Run {
  const policy = policyOf(mode, rounding);
  const round = policy.activation;
  return inStep(() => T.tidy(() => {
    const input = leaf(values(B * L * 2 * H, 11, -3, 3), [B * L, 2 * H]);
    const w = leaf(values(H * 2 * H, 12, -0.6, 0.6), [H, 2 * H]);
    const initial = leaf(values(H, 13, -1, 1), [H]);
    // An op before the steps makes projected an intermediate (its gradient is not a leaf's).
    const projected = policy.output(T.scale(input, 1.5));
    const gemm = (s: T.Tensor) => policy.gemmOutput(T.matmul(policy.gemmInput(s), w));
    let state = T.broadcastTo(T.reshape(initial, [1, H]), [B, H]);
    const states: T.Tensor[] = [];
    if (fused) {
      const steps = T.reshape(projected, [B, L, 2 * H]);
      for (let t = 0; t < L; t++) {
        state = T.highwayStep(steps, t, gemm(state), state, round);
        states.push(T.reshape(state, [B, 1, H]));
      }
    } else {
      const byStep = T.permute(T.reshape(projected, [B, L, 2 * H]), [1, 0, 2]);
      for (let t = 0; t < L; t++) {
        state = unfusedStep(byStep, t, gemm(state), state, policy.output);
        states.push(T.reshape(state, [B, 1, H]));
      }
    }
    const all = T.concat(states, 1);
    const weights = T.tensor(lossWeights(all.size, 14, mode === 'fp16'), [...all.shape]);
    T.backward(T.sum(T.mul(all, weights)));
    return { states: all.toFloat32Array(), grads: [input, w, initial].map((p) => p.grad!.toFloat32Array()) };
  }));
}

/**
 * One step with every operand a leaf: the op's own three input gradients, projected's through its
 * leaf-gradient sink (written at the first step, then accumulated). `repeat` runs slot 0 through
 * a second chain so that slot accumulates onto a nonzero gradient.
 */
function leaves(mode: Mode, fused: boolean, B: number, L: number, H: number, repeat: boolean, rounding: Rounding = 'nearest'): Run {
  const policy = policyOf(mode, rounding);
  const round = policy.activation;
  return inStep(() => T.tidy(() => {
    const projected = leaf(values(B * L * 2 * H, 21, -4, 4), [B, L, 2 * H]);
    const recurrent = leaf(values(B * 2 * H, 22, -2, 2), [B, 2 * H]);
    const state = leaf(values(B * H, 23, -1.5, 1.5), [B, H]);
    // Exact zeros and large values: tanh/σ saturate, d and s cancel, fp16 overflows.
    projected.backend.write(projected.storage, Float32Array.from([0, -0, 30, -30, 7e4]), 0);
    const outs: T.Tensor[] = [];
    const byStep = fused ? null : T.permute(projected, [1, 0, 2]);
    const step = (t: number) =>
      byStep ? unfusedStep(byStep, t, recurrent, state, policy.output) : T.highwayStep(projected, t, recurrent, state, round);
    for (let t = L - 1; t >= 0; t--) outs.push(step(t));
    if (repeat) outs.push(step(0));
    const all = T.concat(outs, 1);
    const weights = T.tensor(lossWeights(all.size, 24, mode === 'fp16'), [...all.shape]);
    T.backward(T.sum(T.mul(all, weights)));
    return { states: all.toFloat32Array(), grads: [projected, recurrent, state].map((p) => p.grad!.toFloat32Array()) };
  }));
}

/**
 * Only the state needs a gradient: the unfused graph then records no quantise on pre, c or u,
 * and its backward draws three streams a step, not six.
 */
function stateOnly(mode: Mode, fused: boolean, rounding: Rounding): Run {
  const policy = policyOf(mode, rounding);
  const [B, L, H] = [2, 3, 5];
  return inStep(() => T.tidy(() => {
    const projected = T.tensor(values(B * L * 2 * H, 41, -3, 3), [B, L, 2 * H]);
    const recurrent = T.tensor(values(B * 2 * H, 42, -2, 2), [B, 2 * H]);
    const state = leaf(values(B * H, 43, -1.5, 1.5), [B, H]);
    const byStep = T.permute(projected, [1, 0, 2]);
    const outs: T.Tensor[] = [];
    for (let t = 0; t < L; t++) {
      outs.push(fused ? T.highwayStep(projected, t, recurrent, state, policy.activation) : unfusedStep(byStep, t, recurrent, state, policy.output));
    }
    const all = T.concat(outs, 1);
    T.backward(T.sum(T.mul(all, T.tensor(lossWeights(all.size, 44, false), [...all.shape]))));
    return { states: all.toFloat32Array(), grads: [state.grad!.toFloat32Array()] };
  }));
}

function expectSameRuns(fused: Run, unfused: Run, label: string): void {
  expectSameBits(fused.states, unfused.states, `${label}: states`);
  fused.grads.forEach((g, k) => expectSameBits(g, unfused.grads[k], `${label}: gradient of input ${k}`));
  expect(fused.nextStream, `${label}: random streams drawn`).toBe(unfused.nextStream);
}

/** One loss and every parameter gradient of a tiny charlm-rnn, for each of two training steps. */
function modelSteps(
  precision: 'fp16' | 'bf16',
  rounding: Rounding,
  scaling: 'regular' | 'unit',
  fused: boolean,
): { losses: number[]; grads: Map<string, Float32Array>[]; nextStream: number } {
  const previous = process.env.REPRO_FUSED_RHN;
  const previousSequence = process.env.REPRO_RHN_SEQUENCE;
  process.env.REPRO_FUSED_RHN = fused ? '1' : '0';
  // the per-step fused op, not the whole-sequence op (test/tensor/highway-sequence.test.ts)
  process.env.REPRO_RHN_SEQUENCE = '0';
  try {
    const config = tinyConfig('rnn', scaling, 'paper-charlm', [`precision.mode=${precision}`, `precision.rounding=${rounding}`]);
    const model = buildCharLM(config, VOCAB, 3);
    const batch = tinyBatch(config);
    try {
      return inStep(() => {
        const losses: number[] = [];
        const grads: Map<string, Float32Array>[] = [];
        for (let step = 0; step < 2; step++) {
          if (step > 0) T.randomContext().beginStep();
          losses.push(
            T.tidy(() => {
              const { loss } = model.loss(batch, { training: true });
              T.backward(loss);
              return loss.item();
            }),
          );
          grads.push(new Map(model.parameters.map((p) => [p.name, p.tensor.grad!.toFloat32Array()])));
          for (const p of model.parameters) p.tensor.zeroGrad();
        }
        return { losses, grads };
      });
    } finally {
      disposeBatch(batch);
      model.dispose();
    }
  } finally {
    if (previous === undefined) delete process.env.REPRO_FUSED_RHN;
    else process.env.REPRO_FUSED_RHN = previous;
    if (previousSequence === undefined) delete process.env.REPRO_RHN_SEQUENCE;
    else process.env.REPRO_RHN_SEQUENCE = previousSequence;
  }
}

describe('highwayStep: the fused Recurrent Highway Network step', () => {
  for (const mode of ['fp32', 'fp16', 'bf16', 'fp8'] as const) {
    it(`equals the unfused op chain bit for bit over a sequence (${mode}, nearest)`, () => {
      const [B, L, H] = [3, 6, 5];
      expectSameRuns(layerLike(mode, true, B, L, H), layerLike(mode, false, B, L, H), `${mode} sequence`);
    });

    it(`equals the unfused op chain bit for bit with leaf operands and a reused slot (${mode})`, () => {
      for (const repeat of [false, true]) {
        const [B, L, H] = [2, 4, 7];
        expectSameRuns(leaves(mode, true, B, L, H, repeat), leaves(mode, false, B, L, H, repeat), `${mode} leaves${repeat ? ', slot reused' : ''}`);
      }
    });
  }

  for (const mode of ['fp16', 'bf16'] as const) {
    it(`equals the unfused op chain bit for bit with stochastic rounding, streams included (${mode})`, () => {
      const [B, L, H] = [3, 6, 5];
      expectSameRuns(layerLike(mode, true, B, L, H, 'stochastic'), layerLike(mode, false, B, L, H, 'stochastic'), `${mode} stochastic sequence`);
      for (const repeat of [false, true]) {
        const [b, l, h] = [2, 4, 7];
        expectSameRuns(
          leaves(mode, true, b, l, h, repeat, 'stochastic'),
          leaves(mode, false, b, l, h, repeat, 'stochastic'),
          `${mode} stochastic leaves${repeat ? ', slot reused' : ''}`,
        );
      }
      expectSameRuns(stateOnly(mode, true, 'stochastic'), stateOnly(mode, false, 'stochastic'), `${mode} stochastic, only the state needs a gradient`);
    });
  }

  it('rounds stochastically: other values than nearest rounding, and other ones each step', () => {
    const [B, L, H] = [3, 6, 5];
    const stochastic = layerLike('fp16', true, B, L, H, 'stochastic');
    const nearest = layerLike('fp16', true, B, L, H, 'nearest');
    const differs = (a: Float32Array, b: Float32Array) => a.some((v, i) => !Object.is(v, b[i]));
    expect(differs(stochastic.states, nearest.states)).toBe(true);
    expect(stochastic.grads.some((g, k) => differs(g, nearest.grads[k]))).toBe(true);
    // The streams restart each step while the epoch advances: the next step's numbers are new.
    const [first, second] = T.tidy(() => {
      const previous = T.randomContext();
      const ctx = new T.RandomContext(3);
      T.setRandomContext(ctx);
      try {
        const round = policyOf('fp16', 'stochastic').activation;
        const run = () => {
          ctx.beginStep();
          const p = T.tensor(values(2 * 3 * 8, 51, -2, 2), [2, 3, 8]);
          return T.highwayStep(p, 1, T.tensor(values(16, 52), [2, 8]), T.tensor(values(8, 53), [2, 4]), round).toFloat32Array();
        };
        return [run(), run()];
      } finally {
        T.setRandomContext(previous);
      }
    });
    expect(differs(first, second)).toBe(true);
  });

  const modelCases = [
    ['fp16', 'stochastic', 'regular'],
    ['fp16', 'stochastic', 'unit'],
    ['bf16', 'stochastic', 'regular'],
    ['fp16', 'nearest', 'regular'],
  ] as const;
  for (const [precision, rounding, scaling] of modelCases) {
    it(`a ${scaling} charlm-rnn with ${rounding} ${precision} rounding has the same losses, parameter gradients and streams fused and op by op`, () => {
      const fused = modelSteps(precision, rounding, scaling, true);
      const unfused = modelSteps(precision, rounding, scaling, false);
      for (const loss of fused.losses) expect(Number.isFinite(loss)).toBe(true);
      expect(fused.losses).toEqual(unfused.losses);
      expect(fused.nextStream).toBe(unfused.nextStream);
      fused.grads.forEach((grads, step) => {
        expect([...grads.keys()]).toEqual([...unfused.grads[step].keys()]);
        for (const [name, g] of grads) expectSameBits(g, unfused.grads[step].get(name)!, `step ${step}: gradient of ${name}`);
      });
    });
  }

  it('matches central differences', () => {
    gradcheck([[2, 3, 8], [2, 8], [2, 4]], (p, r, s) => T.highwayStep(p, 1, r, s, null));
    // Two steps through a shared state weight: the state gradient feeds the next step's.
    gradcheck([[2, 3, 8], [4, 8], [2, 4]], (p, w, s0) => {
      const s1 = T.highwayStep(p, 0, T.matmul(s0, w), s0, null);
      return T.highwayStep(p, 2, T.matmul(s1, w), s1, null);
    });
  });

  it('writes only slot t of the projected gradient', () => {
    T.tidy(() => {
      const projected = leaf(values(2 * 3 * 4, 31), [2, 3, 4]);
      const h = T.highwayStep(projected, 1, T.tensor(values(8, 32), [2, 4]), T.tensor(values(4, 33), [2, 2]), null);
      T.backward(T.sum(h));
      const g = projected.grad!.toFloat32Array();
      for (let b = 0; b < 2; b++) {
        for (let t = 0; t < 3; t++) {
          const row = Array.from(g.subarray((b * 3 + t) * 4, (b * 3 + t + 1) * 4));
          if (t === 1) expect(row.some((v) => v !== 0)).toBe(true);
          else expect(row).toEqual([0, 0, 0, 0]);
        }
      }
    });
  });

  it('refuses mismatched shapes', () => {
    T.tidy(() => {
      const p = T.zeros([2, 3, 8]);
      const r = T.zeros([2, 8]);
      const s = T.zeros([2, 4]);
      expect(() => T.highwayStep(p, 3, r, s, null)).toThrow(/step/);
      expect(() => T.highwayStep(p, 0, T.zeros([2, 6]), s, null)).toThrow(/shapes/);
    });
  });
});
