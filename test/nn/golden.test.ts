import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as nn from '../../src/nn/index.ts';
import * as T from '../../src/tensor/index.ts';

/**
 * Graphcore's unit_scaling library (v0.3.5, u-μP rules) on seeded inputs, computed with PyTorch
 * (shared/golden/README.md). The `umup` rule set must reproduce every output and gradient.
 */
type GoldenValue = number | 'inf' | '-inf' | 'nan';
interface GoldenArray {
  shape: number[];
  data: GoldenValue[];
}
interface GoldenCase {
  args: Record<string, unknown>;
  scales: Record<string, number | string>;
  inputs: Record<string, GoldenArray>;
  grad_output: Record<string, GoldenArray | 'ones'>;
  outputs: Record<string, GoldenArray>;
  tolerance_hint: Record<string, number>;
}

const golden = JSON.parse(readFileSync(new URL('../fixtures/golden/ops.json', import.meta.url), 'utf8')) as {
  cases: Record<string, GoldenCase>;
};

const toNumber = (v: GoldenValue): number => (v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v === 'nan' ? NaN : v);
const floats = (a: GoldenArray) => Float32Array.from(a.data.map(toNumber));

const UMUP = nn.unitScaling('umup');

type Inputs = Record<string, T.Tensor>;
/** Each case's op under the umup rule set: named inputs → named outputs (as in the file). */
const OPS: Record<string, (x: Inputs, c: GoldenCase) => Record<string, T.Tensor>> = {
  linear: (x) => ({ output: nn.linear(x.input, x.weight, x.bias, UMUP, { weightLayout: 'out-in' }) }),
  linear_readout: (x) => ({ output: nn.linearReadout(x.input, x.weight, null, UMUP, { weightLayout: 'out-in' }) }),
  gelu: (x) => ({ output: nn.gelu(x.input, UMUP) }),
  softmax: (x) => ({ output: nn.softmax(x.input, UMUP) }),
  layer_norm: (x, c) => ({ output: nn.layerNorm(x.input, x.weight, x.bias, UMUP, { eps: c.args.eps as number }) }),
  rms_norm: (x, c) => ({ output: nn.rmsNorm(x.input, x.weight, UMUP, { eps: c.args.eps as number }) }),
  cross_entropy: (x) => ({ loss: nn.crossEntropy(x.input, x.target, null, UMUP).loss }),
  embedding: (x) => ({ output: nn.embedding(x.weight, x.input, UMUP) }),
  scaled_dot_product_attention_causal: (x) => ({ output: nn.scaledDotProductAttention(x.query, x.key, x.value, UMUP, { causal: true }) }),
  scaled_dot_product_attention_full: (x) => ({ output: nn.scaledDotProductAttention(x.query, x.key, x.value, UMUP, { causal: false }) }),
  residual_split: (x, c) => {
    const { residual, skip } = nn.residualSplit(x.input, c.args.tau as number, UMUP);
    return { residual, skip };
  },
  residual_add: (x, c) => ({ output: nn.residualAdd(x.residual, x.skip, c.args.tau as number, UMUP) }),
  add_broadcast: (x) => ({ output: nn.add(x.input, x.other, UMUP) }),
  matmul: (x) => ({ output: nn.matmul(x.left, x.right, UMUP) }),
};

const INTEGER_INPUTS = new Set(['target', 'input_ids']);

function makeInputs(name: string, c: GoldenCase): Inputs {
  const out: Inputs = {};
  for (const [key, value] of Object.entries(c.inputs)) {
    const integer = INTEGER_INPUTS.has(key) || (name === 'embedding' && key === 'input');
    const t = integer ? T.tensor(Int32Array.from(value.data.map(toNumber)), value.shape) : T.tensor(floats(value), value.shape);
    if (!integer) t.requiresGrad = true;
    out[key] = t;
  }
  return out;
}

function expectClose(what: string, got: Float32Array, expected: Float32Array, hint: number | undefined): void {
  expect(got.length, `${what}: length`).toBe(expected.length);
  let maxAbs = 0;
  let maxDiff = 0;
  for (let i = 0; i < got.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - expected[i]));
  }
  const tolerance = Math.max(1e-5 * maxAbs, hint ?? 0);
  expect(maxDiff, `${what}: max |diff| ${maxDiff} (scale ${maxAbs})`).toBeLessThanOrEqual(tolerance);
}

describe('umup rule set against the unit_scaling library (golden/ops.json)', () => {
  it('covers every golden case', () => {
    expect(Object.keys(golden.cases).sort()).toEqual(Object.keys(OPS).sort());
  });

  it.each(Object.keys(OPS))('%s: outputs and gradients', (name) => {
    const c = golden.cases[name];
    T.tidy(() => {
      const inputs = makeInputs(name, c);
      const outputs = OPS[name](inputs, c);
      let total: T.Tensor | null = null;
      for (const [key, out] of Object.entries(outputs)) {
        const upstream = c.grad_output[key];
        expect(upstream, `grad_output for ${key}`).toBeDefined();
        const term = upstream === 'ones' ? T.sum(out) : T.sum(T.mul(out, T.tensor(floats(upstream), upstream.shape)));
        total = total ? T.add(total, term) : term;
        expectClose(`${name}.${key}`, out.toFloat32Array(), floats(c.outputs[key]), c.tolerance_hint[key]);
      }
      T.backward(total!);
      for (const [key, expected] of Object.entries(c.outputs)) {
        if (!key.startsWith('grad_')) continue;
        const input = inputs[key.slice('grad_'.length)];
        expect(input?.grad, `${name}: gradient of ${key}`).toBeTruthy();
        expectClose(`${name}.${key}`, input.grad!.toFloat32Array(), floats(expected), c.tolerance_hint[key]);
      }
      for (const t of Object.values(inputs)) {
        t.grad?.dispose();
        t.grad = null;
      }
    });
  });

  it('the scale factors the library reports', () => {
    const scales = (name: string) => golden.cases[name].scales;
    const lin = nn.linearScales(UMUP, 64, 32, 128);
    expect(lin.output).toBeCloseTo(scales('linear').output_scale as number, 12);
    expect(lin.gradInput).toBeCloseTo(scales('linear').grad_input_scale as number, 12);
    expect(lin.gradWeight).toBeCloseTo(scales('linear').grad_weight_scale as number, 12);
    expect(nn.activationScales('gelu', UMUP).scale).toBeCloseTo(scales('gelu').output_scale as number, 12);
    expect(nn.activationScales('gelu', UMUP, { constraint: 'none' }).gradScale).toBeCloseTo(
      scales('gelu').grad_input_scale_before_constraint as number,
      12,
    );
    expect(nn.softmaxScales(UMUP, 64).scale).toBeCloseTo(scales('softmax').output_scale as number, 10);
    expect(nn.embeddingGradScale(UMUP, 50, 128)).toBeCloseTo(scales('embedding').grad_weight_scale as number, 12);
    const causal = nn.attentionScales(UMUP, { keys: 16, headDim: 32, causal: true, dropout: 0 });
    expect(causal.output).toBeCloseTo(scales('scaled_dot_product_attention_causal').output_scale as number, 10);
    expect(causal.temperature).toBeCloseTo(1 / 32, 12);
    const full = nn.attentionScales(UMUP, { keys: 16, headDim: 32, causal: false, dropout: 0 });
    expect(full.output).toBeCloseTo(scales('scaled_dot_product_attention_full').output_scale as number, 10);
    const w = nn.residualWeights(0.5, UMUP);
    expect(w.branch).toBeCloseTo(scales('residual_split').residual_grad_scale as number, 12);
    expect(w.skip).toBeCloseTo(scales('residual_split').skip_grad_scale as number, 12);
  });
});
