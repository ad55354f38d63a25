import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import * as nn from '../../src/nn/index.ts';
import { ReferenceGpt } from '../../src/models/gpt/model.ts';
import { gradcheck, param, values } from './gradcheck.ts';

/** q, k, v packed as one [B, S, 3, H, D] tensor (a fused projection), read through heads windows. */
function packedViews(qkv: T.Tensor, B: number, S: number, H: number, D: number): [T.HeadsView, T.HeadsView, T.HeadsView] {
  const part = (i: number) => T.headsView(qkv, [B, H, S, D], [S * 3 * H * D, D, 3 * H * D], i * H * D);
  return [part(0), part(1), part(2)];
}

/** Runs fn with REPRO_ATTENTION set to `setting`. */
function withImplementation<R>(setting: nn.AttentionImplementation, fn: () => R): R {
  const before = process.env.REPRO_ATTENTION;
  process.env.REPRO_ATTENTION = setting;
  try {
    return fn();
  } finally {
    if (before === undefined) delete process.env.REPRO_ATTENTION;
    else process.env.REPRO_ATTENTION = before;
  }
}

type Form = (views: readonly T.HeadsView[], scaling: nn.Scaling, causal: boolean) => T.Tensor;
const form = (setting: nn.AttentionImplementation): Form => (views, scaling, causal) =>
  withImplementation(setting, () => nn.scaledDotProductAttentionHeads(views[0]!, views[1]!, views[2]!, scaling, { causal }));
/** The unfused chain on copies of the windows, as [B, S, H, D]. */
const unfused = form('copies');
const fused = form('fused');
const materialised = form('materialised');

/** Output and the gradient of Σ out·w with respect to the packed qkv. */
function run(form: Form, scaling: nn.Scaling, causal: boolean, dims: { B: number; S: number; H: number; D: number }, seed: number): Float32Array[] {
  const { B, S, H, D } = dims;
  return T.tidy(() => {
    const qkv = param(values(B * S * 3 * H * D, seed, -2, 2), [B, S, 3 * H * D]);
    const out = form(packedViews(qkv, B, S, H, D), scaling, causal);
    T.backward(T.sum(T.mul(out, T.tensor(values(out.size, seed + 1), [...out.shape]))));
    return [out.toFloat32Array(), qkv.grad!.toFloat32Array()];
  });
}

/** q and k read the first columns of a wider [3, 5] tensor: its last column gets a zero gradient, the rest not. */
function expectUncoveredZero(attend: (q: T.HeadsView, k: T.HeadsView, v: T.HeadsView) => T.Tensor): void {
  const [B, H, S, D] = [1, 1, 3, 2];
  T.tidy(() => {
    const wide = param(values(S * 5, 4), [S, 5]);
    const q = T.headsView(wide, [B, H, S, D], [0, 0, 5], 0);
    const k = T.headsView(wide, [B, H, S, D], [0, 0, 5], 2);
    const v = T.heads(param(values(B * H * S * D, 5), [B, H, S, D]));
    T.backward(T.sum(attend(q, k, v)));
    const g = wide.grad!.toFloat32Array();
    for (let s = 0; s < S; s++) expect(g[s * 5 + 4]).toBe(0);
    expect(g.some((x) => x !== 0)).toBe(true);
  });
}

function worstRelative(actual: Float32Array, expected: Float32Array): number {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  for (const x of expected) scale = Math.max(scale, Math.abs(x));
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  return worst / scale;
}

describe('fused attention (T.attention) on the CPU', () => {
  const cases = [
    { name: 'regular causal', scaling: nn.REGULAR, causal: true, dims: { B: 2, S: 7, H: 2, D: 4 } },
    { name: 'regular full', scaling: nn.REGULAR, causal: false, dims: { B: 1, S: 5, H: 3, D: 6 } },
    { name: 'unit (u-μP) causal', scaling: nn.unitScaling('umup'), causal: true, dims: { B: 2, S: 9, H: 1, D: 8 } },
    { name: 'unit (paper library) causal', scaling: nn.unitScaling('paper-library'), causal: true, dims: { B: 1, S: 6, H: 2, D: 5 } },
  ];
  for (const [name, op] of [['fused', fused], ['materialised', materialised]] as const) for (const c of cases) {
    it(`${name} equals the unfused matmul-softmax-matmul chain on copies: ${c.name}`, () => {
      const [out, grad] = run(op, c.scaling, c.causal, c.dims, 11);
      const [refOut, refGrad] = run(unfused, c.scaling, c.causal, c.dims, 11);
      // float64 sums rounded once against float32 GEMMs and softmax: a few float32 ulps.
      expect(worstRelative(out!, refOut!)).toBeLessThan(1e-6);
      expect(worstRelative(grad!, refGrad!)).toBeLessThan(1e-6);
    });
  }

  it('matches central differences through separate q, k and v tensors', () => {
    const [B, H, S, D] = [1, 2, 4, 3];
    gradcheck([[B, H, S, D], [B, H, S, D], [B, H, S, D]], (q, k, v) =>
      T.attention(T.heads(q), T.heads(k), T.heads(v), { causal: true, temperature: 0.7, outputScale: 1, probsGradScale: 1, logitGradScale: 0.7, valueGradScale: 1 }),
    );
  });

  it('applies each backward factor to its own gradient only', () => {
    const [B, H, S, D] = [1, 1, 5, 4];
    const grads = (factors: { probsGradScale: number; logitGradScale: number; valueGradScale: number }) =>
      T.tidy(() => {
        const inputs = [1, 2, 3].map((s) => param(values(B * H * S * D, s), [B, H, S, D]));
        const out = T.attention(T.heads(inputs[0]!), T.heads(inputs[1]!), T.heads(inputs[2]!), { causal: true, temperature: 0.5, outputScale: 3, ...factors });
        T.backward(T.sum(T.mul(out, T.tensor(values(out.size, 9), [...out.shape]))));
        return inputs.map((x) => x.grad!.toFloat32Array());
      });
    const base = grads({ probsGradScale: 1, logitGradScale: 0.5, valueGradScale: 1 });
    const scaled = grads({ probsGradScale: 2, logitGradScale: 1.5, valueGradScale: 5 });
    // q and k gradients are linear in probsGradScale·logitGradScale, v's in valueGradScale.
    for (let i = 0; i < base[0]!.length; i++) {
      expect(scaled[0]![i]).toBeCloseTo(base[0]![i]! * 6, 4);
      expect(scaled[1]![i]).toBeCloseTo(base[1]![i]! * 6, 4);
      expect(scaled[2]![i]).toBeCloseTo(base[2]![i]! * 5, 4);
    }
  });

  it('zero-fills a source that its windows do not cover, and rejects windows outside it', () => {
    expectUncoveredZero((q, k, v) => T.attention(q, k, v, { causal: false, temperature: 1, outputScale: 1, probsGradScale: 1, logitGradScale: 1, valueGradScale: 1 }));
    T.tidy(() => expect(() => T.headsView(T.zeros([3, 5]), [1, 1, 3, 2], [0, 0, 5], 4)).toThrow(/does not fit/));
  });

  it('leaves the reference GPT model\'s loss and gradients as the chain on copies gives them (fused and materialised; FP32 and BF16, regular and unit)', () => {
    const lossAndGradients = (mode: 'fp32' | 'bf16', scaling: nn.Scaling) =>
      T.tidy(() => {
        const precision = nn.precisionPolicy({ mode, fp8_family: 'paper', rounding: 'nearest', master_weights: false, matmul: 'native', allow_tf32: false });
        const model = new ReferenceGpt({ vocab: 13, hidden: 16, depth: 2, heads: 2, sequenceLength: 9, scaling, precision, seed: 3, flashAttention16: false });
        const ids = T.tensor(Int32Array.from({ length: 18 }, (_, i) => (i * 5) % 13), [2, 9]);
        const loss = model.loss(ids, ids);
        T.backward(loss);
        const result = [loss.toFloat32Array(), ...model.parameters.map((p) => p.tensor.grad!.toFloat32Array())];
        model.dispose();
        return result;
      });
    for (const mode of ['fp32', 'bf16'] as const) {
      for (const scaling of [nn.REGULAR, nn.unitScaling('umup')]) {
        const unfusedRun = withImplementation('copies', () => lossAndGradients(mode, scaling));
        for (const setting of ['fused', 'materialised'] as const) {
          const run = withImplementation(setting, () => lossAndGradients(mode, scaling));
          // BF16 rounds after the attention, so a float32-level difference can move a value by one BF16 step.
          const tolerance = mode === 'fp32' ? 1e-5 : 2e-2;
          run.forEach((x, i) => expect(worstRelative(x, unfusedRun[i]!), `${setting} ${mode} ${scaling.mode} array ${i}`).toBeLessThan(tolerance));
        }
      }
    }
  });
});

describe('materialised attention (products on the windows) on the CPU', () => {
  const viaNn = (scaling: nn.Scaling, causal: boolean, dropout = 0) => (q: T.Tensor, k: T.Tensor, v: T.Tensor) =>
    withImplementation('materialised', () => nn.scaledDotProductAttentionHeads(T.heads(q), T.heads(k), T.heads(v), scaling, { causal, dropout, training: false }));

  it('matches central differences through separate q, k and v tensors, causal and full, regular and unit', () => {
    const [B, H, S, D] = [1, 2, 4, 3];
    for (const causal of [true, false]) {
      gradcheck([[B, H, S, D], [B, H, S, D], [B, H, S, D]], viaNn(nn.REGULAR, causal));
    }
    // u-μP's backward factors are not the true gradient; the chain-equality tests above cover them.
  });

  it('zero-fills a source that its windows do not cover', () => {
    expectUncoveredZero((q, k, v) => withImplementation('materialised', () => nn.scaledDotProductAttentionHeads(q, k, v, nn.REGULAR, { causal: false })));
  });

  it('is the default; a bad REPRO_ATTENTION is a one-line error; coinciding windows work in every implementation', () => {
    const before = process.env.REPRO_ATTENTION;
    delete process.env.REPRO_ATTENTION;
    try {
      expect(nn.attentionImplementation()).toBe('materialised');
    } finally {
      if (before !== undefined) process.env.REPRO_ATTENTION = before;
    }
    expect(() => withImplementation('flash' as nn.AttentionImplementation, () => nn.attentionImplementation())).toThrow(/REPRO_ATTENTION must be materialised, fused or copies, got flash/);
    process.env.REPRO_FUSED_ATTENTION = '1';
    try {
      expect(() => nn.attentionImplementation()).toThrow(/REPRO_FUSED_ATTENTION was replaced by REPRO_ATTENTION=fused/);
    } finally {
      delete process.env.REPRO_FUSED_ATTENTION;
    }
    // q and k the same window (each query scored against itself and the others): gradients add up.
    const [B, H, S, D] = [1, 1, 4, 3];
    for (const setting of ['materialised', 'fused', 'copies'] as const) {
      gradcheck([[B, H, S, D], [B, H, S, D]], (x, v) =>
        withImplementation(setting, () => nn.scaledDotProductAttentionHeads(T.heads(x), T.heads(x), T.heads(v), nn.REGULAR, { causal: true })),
      );
    }
  });
});
