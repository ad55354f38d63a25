import { describe, expect, it } from 'vitest';
import type { Mixer, ScalingRules } from '../../src/config/schema.ts';
import { buildCharLM, relativeShift, sinusoidTable } from '../../src/models/charlm/index.ts';
import * as T from '../../src/tensor/index.ts';
import { disposeBatch, tinyBatch, tinyConfig, VOCAB, withModel } from './helpers.ts';

const MIXERS = ['attention', 'conv', 'rnn'] as const;
const VARIANTS: ['regular' | 'unit', ScalingRules][] = [
  ['regular', 'paper-charlm'],
  ['unit', 'paper-charlm'],
  ['unit', 'paper-library'],
  ['unit', 'umup'],
];

function scoresOf(mixer: Mixer, scaling: 'regular' | 'unit', rules: ScalingRules, tokens: Int32Array, shape: number[]): Float32Array {
  return withModel(tinyConfig(mixer, scaling, rules), (model) => T.noGrad(() => T.tidy(() => model.scores(T.tensor(tokens, shape)).toFloat32Array())));
}

describe.each(MIXERS)('%s char-LM', (mixer) => {
  it.each(VARIANTS)('%s %s: changing token t leaves the scores of positions ≤ t unchanged and changes position t+1', (scaling, rules) => {
    const [B, L, V] = [2, 8, VOCAB];
    const tokens = Int32Array.from({ length: B * L }, (_, i) => (i * 5 + 3) % V);
    const base = scoresOf(mixer, scaling, rules, tokens, [B, L]);
    for (const t of [0, 3, 6]) {
      const changed = tokens.slice();
      changed[t] = (changed[t] + 4) % V; // row 0 only
      const other = scoresOf(mixer, scaling, rules, changed, [B, L]);
      for (let b = 0; b < B; b++) {
        for (let i = 0; i < L; i++) {
          const row = (k: Float32Array) => Array.from(k.subarray((b * L + i) * V, (b * L + i + 1) * V));
          if (b === 1 || i <= t) expect(row(other), `batch ${b} position ${i} after changing token ${t}`).toEqual(row(base));
          else if (i === t + 1) expect(row(other)).not.toEqual(row(base));
        }
      }
    }
  });

  it('pad-and-shift: position 0 is the padding vector, and the loss scores position i against token i', () => {
    const config = tinyConfig(mixer, 'unit');
    const batch = tinyBatch(config);
    try {
      withModel(config, (model) => {
        const padding = model.parameters.find((p) => p.name === 'pad_shift.padding')!.tensor;
        padding.backend.write(padding.storage, Float32Array.from({ length: VOCAB }, (_, i) => i / 3 - 1));
        const [B, L] = batch.tokens.shape;
        const { scores, loss, count } = T.noGrad(() =>
          T.tidy(() => {
            const out = model.loss(batch, { training: false });
            return { scores: model.scores(batch.tokens).toFloat32Array(), loss: out.loss.item(), count: out.count.item() };
          }),
        );
        const tokens = batch.tokens.toArray();
        const mask = batch.mask.toFloat32Array();
        let total = 0;
        for (let b = 0; b < B; b++) {
          expect(Array.from(scores.subarray(b * L * VOCAB, (b * L + 1) * VOCAB))).toEqual(Array.from(padding.toFloat32Array()));
          for (let i = 0; i < L; i++) {
            if (!mask[b * L + i]) continue;
            const row = scores.subarray((b * L + i) * VOCAB, (b * L + i + 1) * VOCAB);
            const max = Math.max(...row);
            const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
            total += lse - row[tokens[b * L + i]];
          }
        }
        expect(count).toBe(mask.reduce((a, v) => a + v, 0));
        expect(loss).toBeCloseTo(total / count, 5);
      });
    } finally {
      disposeBatch(batch);
    }
  });
});

describe('parameters', () => {
  it('are named, typed and initialised by the rule set; unit paper-charlm 1-D parameters get lr/√length', () => {
    const regular = tinyConfig('attention', 'regular');
    const unit = tinyConfig('attention', 'unit');
    withModel(regular, (model) => {
      const byName = new Map(model.parameters.map((p) => [p.name, p]));
      expect(byName.get('embedding.weight')!.role).toBe('embedding');
      expect(byName.get('readout.weight')!.role).toBe('output');
      expect(byName.get('layers.1.ffn.up.bias')!.role).toBe('bias');
      expect(byName.get('layers.0.attention.norm.gain')!.role).toBe('norm');
      expect(byName.get('layers.0.attention.query_bias')!.role).toBe('vector');
      expect(model.parameters.every((p) => p.lrScale === 1)).toBe(true);
      // Glorot-uniform FFN weight: U(±√(6/(16+32)))
      const w = byName.get('layers.0.ffn.up.weight')!.tensor.toFloat32Array();
      const limit = Math.sqrt(6 / 48);
      expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(limit);
      expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(0.8 * limit);
    });
    withModel(unit, (model) => {
      const byName = new Map(model.parameters.map((p) => [p.name, p]));
      expect(byName.get('layers.1.ffn.up.bias')!.lrScale).toBeCloseTo(1 / Math.sqrt(32), 12);
      expect(byName.get('final_norm.gain')!.lrScale).toBeCloseTo(1 / 4, 12);
      expect(byName.get('layers.0.attention.query_bias')!.lrScale).toBe(1);
      expect(byName.get('layers.0.ffn.up.weight')!.lrScale).toBe(1);
      // DEMO's "var 1" init: U(±√3)
      const w = byName.get('layers.0.ffn.up.weight')!.tensor.toFloat32Array();
      expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(Math.sqrt(3));
      expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(1.6);
    });
  });

  it('initial weights depend only on the seed and the parameter name', () => {
    const a = buildCharLM(tinyConfig('attention', 'unit'), VOCAB, 7);
    const b = buildCharLM(tinyConfig('attention', 'unit', 'paper-charlm', ['model.depth=3']), VOCAB, 7);
    const c = buildCharLM(tinyConfig('attention', 'unit'), VOCAB, 8);
    try {
      const get = (m: typeof a, name: string) => m.parameters.find((p) => p.name === name)!.tensor.toFloat32Array();
      expect(Array.from(get(a, 'layers.1.ffn.down.weight'))).toEqual(Array.from(get(b, 'layers.1.ffn.down.weight')));
      expect(Array.from(get(a, 'layers.1.ffn.down.weight'))).not.toEqual(Array.from(get(c, 'layers.1.ffn.down.weight')));
      expect(Array.from(get(a, 'layers.0.ffn.down.weight'))).not.toEqual(Array.from(get(a, 'layers.1.ffn.down.weight')));
    } finally {
      a.dispose();
      b.dispose();
      c.dispose();
    }
  });

  it('a matmul-only constraint is refused for the whole model, naming the key', () => {
    const config = tinyConfig('conv', 'unit', 'paper-library', ['scaling.constraint=to_left_grad_scale']);
    expect(() => buildCharLM(config, VOCAB, 1)).toThrow(/^scaling\.constraint to_left_grad_scale: applies only to ops with two/);
  });

  it('umup: Adam learning-rate multipliers fanIn^-½ for weights, ×depth^-½ inside the trunk', () => {
    withModel(tinyConfig('attention', 'unit', 'umup'), (model) => {
      const byName = new Map(model.parameters.map((p) => [p.name, p.lrScale]));
      expect(byName.get('layers.0.ffn.down.weight')).toBeCloseTo(32 ** -0.5 * 2 ** -0.5, 12);
      expect(byName.get('embedding.weight')).toBeCloseTo(16 ** -0.5, 12);
      expect(byName.get('readout.weight')).toBe(1);
      expect(byName.get('layers.0.ffn.down.bias')).toBeCloseTo(2 ** -0.5, 12);
    });
  });
});

describe('relative positions', () => {
  it('the sinusoid table has sin/cos pairs with periods from 2 to max_period', () => {
    const S = sinusoidTable(5, 8, 16);
    for (let t = 0; t < 5; t++) {
      expect(S[t * 8 + 0]).toBeCloseTo(Math.sin(Math.PI * t), 6);
      expect(S[t * 8 + 1]).toBeCloseTo(Math.cos(Math.PI * t), 6);
      expect(S[t * 8 + 6]).toBeCloseTo(Math.sin(((2 * Math.PI) / 16) * t), 6);
    }
  });

  it('the relative shift turns r[i, d] into logits[i, j] = r[i, i−j] (experiments.md §A4 test vector)', () => {
    const r = [
      [1, 2, 3, 4],
      [11, 12, 13, 14],
      [21, 22, 23, 24],
      [31, 32, 33, 34],
    ];
    // the model computes its scores against reversed positions: r′[i, t′] = r[i, L−1−t′]
    const reversed = T.tensor(r.flatMap((row) => [...row].reverse()), [1, 4, 4]);
    const shifted = Array.from(T.tidy(() => relativeShift(reversed).toFloat32Array()));
    const causal = shifted.map((v, k) => (k % 4 <= Math.floor(k / 4) ? v : 0));
    expect(causal).toEqual([1, 0, 0, 0, 12, 11, 0, 0, 23, 22, 21, 0, 34, 33, 32, 31]);
  });
});

describe('precision', () => {
  it.each(MIXERS)('%s: FP16 and FP8 runs give finite losses near the FP32 one; FP16 logits are FP16 values', (mixer) => {
    const losses: number[] = [];
    for (const mode of ['fp32', 'fp16', 'fp8'] as const) {
      const config = tinyConfig(mixer, 'unit', 'paper-charlm', [`precision.mode=${mode}`, 'precision.rounding=nearest']);
      const batch = tinyBatch(config);
      try {
        withModel(config, (model) => {
          T.tidy(() => {
            const out = model.loss(batch, { training: true });
            T.backward(out.loss);
            losses.push(out.loss.item());
            if (mode === 'fp16') {
              const scores = model.scores(batch.tokens).toFloat32Array();
              const rounded = T.quantise(T.tensor(scores, [scores.length]), model.precision.activation!).toFloat32Array();
              expect(Array.from(scores)).toEqual(Array.from(rounded));
            }
          });
          for (const p of model.parameters) expect(p.tensor.grad!.toFloat32Array().every(Number.isFinite)).toBe(true);
        });
      } finally {
        disposeBatch(batch);
      }
    }
    expect(Math.abs(losses[1] - losses[0])).toBeLessThan(0.01);
    expect(Math.abs(losses[2] - losses[0])).toBeLessThan(0.1);
  });
});

describe('attention masking inside the softmax kernel', () => {
  // mask_value -30000 takes the in-kernel path, -5000 the where() path; exp(mask − max) is 0 in
  // float32 for both, so loss and every gradient must agree bit for bit. (Nearest rounding: with
  // stochastic rounding the where() path's extra cast would shift every later random stream.)
  function lossAndGrads(maskValue: number, scaling: 'regular' | 'unit', rules: ScalingRules, precision: string): Float32Array[] {
    const config = tinyConfig('attention', scaling, rules, [`model.attention.mask_value=${maskValue}`, `precision.mode=${precision}`, 'precision.rounding=nearest']);
    const batch = tinyBatch(config);
    try {
      return withModel(config, (model) => {
        const loss = T.tidy(() => {
          const out = model.loss(batch, { training: true }).loss;
          T.backward(out);
          return T.keep(out).toFloat32Array();
        });
        return [loss, ...model.parameters.map((p) => p.tensor.grad!.toFloat32Array())];
      });
    } finally {
      disposeBatch(batch);
    }
  }

  it.each([
    ['regular', 'paper-charlm', 'fp32'],
    ['unit', 'paper-charlm', 'fp16'],
    ['unit', 'paper-library', 'fp32'],
  ] as const)('%s %s %s: same loss and gradients as where(mask, x, mask_value)', (scaling, rules, precision) => {
    const inKernel = lossAndGrads(-30000, scaling, rules, precision);
    const viaWhere = lossAndGrads(-5000, scaling, rules, precision);
    expect(inKernel.length).toBe(viaWhere.length);
    inKernel.forEach((values, i) => expect(Array.from(values), `tensor ${i}`).toEqual(Array.from(viaWhere[i]!)));
  });
});
