/**
 * 16-bit attention (T.attention's `format`, FlashAttention under autocast) on the CPU twin:
 * checked against the rule written out here element by element, not against the twin's own code.
 */
import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import * as nn from '../../src/nn/index.ts';
import { quantise } from '../../src/formats/quantise.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import { ReferenceGpt } from '../../src/models/gpt/model.ts';
import { param, values } from './gradcheck.ts';

const [B, H, S, D] = [1, 2, 6, 4];
const FACTORS = { temperature: 0.6, outputScale: 1.5, probsGradScale: 0.8, logitGradScale: 0.3, valueGradScale: 1.7 };

function rounded(xs: Float32Array, format: T.Format16): Float32Array {
  const out = Float32Array.from(xs);
  quantise(out, out, parseFormat(format), { rounding: 'nearest', overflow: 'inf' });
  return out;
}
const round1 = (x: number, format: T.Format16) => rounded(Float32Array.of(x), format)[0]!;

/** Element (h, s, d) of a contiguous [1, H, S, D] array. */
const at = (h: number, s: number, d: number) => (h * S + s) * D + d;

function worstRelative(actual: Float32Array, expected: Float32Array): number {
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  }
  return worst / scale;
}

/** out, and the q, k, v gradients of Σ out·w, through T.attention with the given format. */
function attend(format: T.Format16 | undefined, inputs: Float32Array[], w: Float32Array, causal = true) {
  return T.tidy(() => {
    const [q, k, v] = inputs.map((x) => param(x, [B, H, S, D]));
    const out = T.attention(T.heads(q!), T.heads(k!), T.heads(v!), { causal, ...FACTORS, format });
    T.backward(T.sum(T.mul(out, T.tensor(w, [...out.shape]))));
    // out is [B, S, H, D]; bring it to [B, H, S, D] like the inputs.
    return { out: T.permute(out, [0, 2, 1, 3]).toFloat32Array(), grads: [q!, k!, v!].map((x) => x.grad!.toFloat32Array()) };
  });
}

/** The rule, straight from its statement (AttentionShape.format), in float64 with the stated roundings. */
function expected(format: T.Format16, inputs: Float32Array[], w: Float32Array) {
  const [q, k, v] = inputs.map((x) => rounded(x, format));
  const { temperature, outputScale, probsGradScale, logitGradScale, valueGradScale } = FACTORS;
  // The gradient arriving at out: w, laid out [B, S, H, D], read rounded.
  const g = (h: number, i: number, d: number) => round1(w[(i * H + h) * D + d]!, format);
  const out = new Float32Array(B * H * S * D);
  const grads = [0, 1, 2].map(() => new Float64Array(B * H * S * D));
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < S; i++) {
      const score = (j: number) => {
        let s = 0;
        for (let d = 0; d < D; d++) s += q![at(h, i, d)]! * k![at(h, j, d)]!;
        return temperature * s;
      };
      const scores = Array.from({ length: i + 1 }, (_, j) => score(j));
      const max = Math.max(...scores);
      const total = scores.reduce((sum, s) => sum + Math.exp(s - max), 0);
      const p = scores.map((s) => Math.exp(s - max) / total);
      const pRounded = p.map((x) => round1(x, format));
      for (let d = 0; d < D; d++) out[at(h, i, d)] = outputScale * pRounded.reduce((sum, pj, j) => sum + pj * v![at(h, j, d)]!, 0);
      let delta = 0;
      for (let d = 0; d < D; d++) delta += g(h, i, d) * out[at(h, i, d)]!;
      delta = (probsGradScale * delta) / outputScale;
      for (let j = 0; j <= i; j++) {
        let dp = 0;
        for (let d = 0; d < D; d++) dp += g(h, i, d) * v![at(h, j, d)]!;
        const ds = round1(logitGradScale * p[j]! * (probsGradScale * dp - delta), format);
        for (let d = 0; d < D; d++) {
          grads[0]![at(h, i, d)] += ds * k![at(h, j, d)]!;
          grads[1]![at(h, j, d)] += ds * q![at(h, i, d)]!;
          grads[2]![at(h, j, d)] += valueGradScale * pRounded[j]! * g(h, i, d);
        }
      }
    }
  }
  return { out, grads: grads.map((x) => Float32Array.from(x)) };
}

describe('16-bit attention (format) on the CPU', () => {
  const inputs = [1, 2, 3].map((seed) => values(B * H * S * D, seed, -2, 2));
  const w = values(B * H * S * D, 9);

  for (const format of ['bf16', 'fp16'] as const) {
    it(`${format}: out = outputScale·Σ round(P)·v and the gradients take round(P) and round(logitGradScale·dS), inputs read rounded`, () => {
      const got = attend(format, inputs, w);
      const want = expected(format, inputs, w);
      expect(worstRelative(got.out, want.out)).toBeLessThan(1e-6);
      got.grads.forEach((x, i) => expect(worstRelative(x, want.grads[i]!), `gradient ${i}`).toBeLessThan(1e-5));
      // The roundings are visible: float32 internals give other values.
      const float32 = attend(undefined, inputs.map((x) => rounded(x, format)), rounded(w, format));
      expect(worstRelative(float32.out, want.out)).toBeGreaterThan(1e-5);
    });
  }

  it('reads inputs off the grid exactly as if they had been rounded first', () => {
    const off = attend('bf16', inputs, w);
    const on = attend('bf16', inputs.map((x) => rounded(x, 'bf16')), rounded(w, 'bf16'));
    expect(off.out).toEqual(on.out);
    off.grads.forEach((x, i) => expect(x).toEqual(on.grads[i]));
  });

  it('nn: internalFormat takes the fused op whatever REPRO_ATTENTION says, and refuses what it cannot run', () => {
    const before = process.env.REPRO_ATTENTION;
    process.env.REPRO_ATTENTION = 'copies';
    try {
      T.tidy(() => {
        const [q, k, v] = inputs.map((x) => T.heads(T.tensor(x, [B, H, S, D])));
        const viaNn = nn.scaledDotProductAttentionHeads(q!, k!, v!, nn.REGULAR, { causal: true, internalFormat: 'bf16' });
        const direct = T.attention(q!, k!, v!, { causal: true, temperature: D ** -0.5, outputScale: 1, probsGradScale: 1, logitGradScale: D ** -0.5, valueGradScale: 1, format: 'bf16' });
        expect(viaNn.toFloat32Array()).toEqual(direct.toFloat32Array());
        expect(() => nn.scaledDotProductAttentionHeads(q!, k!, v!, nn.REGULAR, { causal: true, internalFormat: 'bf16', dropout: 0.1, training: true })).toThrow(/bf16 internals need/);
      });
    } finally {
      if (before === undefined) delete process.env.REPRO_ATTENTION;
      else process.env.REPRO_ATTENTION = before;
    }
  });

  it('the reference GPT model in BF16 uses it by default (flashAttention16), close to float32 internals but not equal', () => {
    const loss = (flashAttention16: boolean) =>
      T.tidy(() => {
        const precision = nn.precisionPolicy({ mode: 'bf16', fp8_family: 'paper', rounding: 'nearest', master_weights: false, matmul: 'native', allow_tf32: false });
        const model = new ReferenceGpt({ vocab: 13, hidden: 16, depth: 2, heads: 2, sequenceLength: 9, scaling: nn.REGULAR, precision, seed: 3, flashAttention16 });
        const ids = T.tensor(Int32Array.from({ length: 18 }, (_, i) => (i * 5) % 13), [2, 9]);
        const value = model.loss(ids, ids).toFloat32Array()[0]!;
        model.dispose();
        return value;
      });
    const flash = loss(true);
    const float32 = loss(false);
    expect(flash).not.toBe(float32);
    expect(Math.abs(flash - float32) / float32).toBeLessThan(2e-2);
  });
});
