import { describe, expect, it } from 'vitest';
import * as nn from '../../src/nn/index.ts';
import * as T from '../../src/tensor/index.ts';
import { gaussian } from './helpers.ts';

/**
 * The 2023 rule sets (paper-library: unit-scaling-ops.md §3.1; paper-charlm: §7) against values
 * derived by hand: each unit-scaled op must equal the regular op with the rule's factors applied
 * to its output and to each gradient.
 */
const LIB = nn.unitScaling('paper-library');
const DEMO = nn.unitScaling('paper-charlm');

interface Run {
  out: Float32Array;
  grads: Float32Array[];
}

/** Output and input gradients of f for fixed inputs and a fixed upstream gradient. */
function run(inputs: T.Tensor[], f: () => T.Tensor, upstreamSeed = 7): Run {
  return T.tidy(() => {
    const out = f();
    const g = T.randomNormal([...out.shape], 99, upstreamSeed);
    T.backward(T.sum(T.mul(out, g)));
    const grads = inputs.filter((x) => x.requiresGrad).map((x) => {
      const v = x.grad!.toFloat32Array();
      x.grad!.dispose();
      x.grad = null;
      return v;
    });
    return { out: out.toFloat32Array(), grads };
  });
}

function expectScaled(what: string, got: Float32Array, reference: Float32Array, factor: number): void {
  expect(got.length).toBe(reference.length);
  let worst = 0;
  let scale = 1e-30;
  for (let i = 0; i < got.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - factor * reference[i]));
    scale = Math.max(scale, Math.abs(factor * reference[i]));
  }
  expect(worst / scale, `${what}: max relative deviation from ${factor} × reference`).toBeLessThan(2e-6);
}

describe('constraints (§2)', () => {
  it('combine the candidate scales as the library does', () => {
    expect(nn.applyConstraint('gmean', [4, 1], 'op')).toEqual([2, 2]);
    expect(nn.applyConstraint('hmean', [1, 3], 'op')[0]).toBeCloseTo(1.5, 12);
    expect(nn.applyConstraint('amean', [1, 3], 'op')).toEqual([2, 2]);
    expect(nn.applyConstraint('to_output_scale', [1, 3, 5], 'op')).toEqual([1, 1, 1]);
    expect(nn.applyConstraint('to_grad_input_scale', [1, 3], 'op')).toEqual([3, 3]);
    expect(nn.applyConstraint('to_left_grad_scale', [1, 3, 5], 'op')).toEqual([3, 3, 3]);
    expect(nn.applyConstraint('to_right_grad_scale', [1, 3, 5], 'op')).toEqual([5, 5, 5]);
    expect(nn.applyConstraint('none', [1, 3], 'op')).toEqual([1, 3]);
  });

  it('reject a constraint that does not fit the op, naming both', () => {
    expect(() => nn.applyConstraint('to_left_grad_scale', [1, 2], 'linear')).toThrow(/to_left_grad_scale: linear/);
    expect(() => nn.applyConstraint('to_grad_input_scale', [1, 2, 3], 'matmul')).toThrow(/matmul/);
  });
});

describe('nonlinearity constants', () => {
  it('computed ones agree with the paper notebook’s measurements (§3.1 table)', () => {
    const m = nn.MEASURED_SCALES;
    const close = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThan(1.5e-3);
    close(m.gelu.output, 1.701);
    close(m.gelu.grad, 1.481);
    close(m.tanh.output, 1.593);
    close(m.tanh.grad, 1.468);
    close(m.sigmoid.output, 4.802);
    close(m.sigmoid.grad, 4.722);
    expect(m.relu.output).toBeCloseTo(Math.sqrt(2 / (1 - 1 / Math.PI)), 9);
    expect(m.relu.grad).toBeCloseTo(Math.SQRT2, 9);
  });

  it('gmean-constrained GELU (1.5873), ReLU (1.556) and softmax (n/1.4702)', () => {
    expect(nn.activationScales('gelu', LIB).scale).toBeCloseTo(1.5873, 4);
    expect(nn.activationScales('gelu', LIB).gradScale).toBeCloseTo(1.5873, 4);
    expect(nn.activationScales('relu', DEMO).scale).toBeCloseTo(1.5564, 4);
    expect(nn.softmaxScales(LIB, 256).scale).toBeCloseTo(256 / 1.4702, 2);
    expect(nn.softmaxScales(LIB, 256, { constraint: 'none' }).gradScale).toBeCloseTo(256 / 1.65, 9);
  });

  it('the ops apply them: unit GELU = 1.5873 × GELU, value and gradient', () => {
    const x = gaussian([4, 33]);
    const unit = run([x], () => nn.gelu(x, LIB));
    const plain = run([x], () => T.gelu(x));
    const s = nn.activationScales('gelu', LIB).scale;
    expectScaled('out', unit.out, plain.out, s);
    expectScaled('grad', unit.grads[0], plain.grads[0], s);
  });
});

describe('linear', () => {
  const [rows, fanIn, fanOut] = [12, 8, 20];

  it('paper-library gmean: output (fanIn·fanOut)^-¼ (bias included), input grad the same, W and b grads rows^-½', () => {
    const x = gaussian([rows, fanIn]);
    const w = gaussian([fanIn, fanOut]);
    const b = gaussian([fanOut]);
    const s = (fanIn * fanOut) ** -0.25;
    const unit = run([x, w, b], () => nn.linear(x, w, b, LIB));
    const plain = run([x, w, b], () => T.add(T.matmul(x, w), b));
    expectScaled('out', unit.out, plain.out, s);
    expectScaled('grad x', unit.grads[0], plain.grads[0], s);
    expectScaled('grad W', unit.grads[1], plain.grads[1], rows ** -0.5);
    expectScaled('grad b', unit.grads[2], plain.grads[2], rows ** -0.5);
  });

  it('paper-charlm (DEMO pointwise "both"): W scaled by (in·out)^-¼, bias added after, W and b grads 1/rows', () => {
    const x = gaussian([rows, fanIn]);
    const w = gaussian([fanIn, fanOut]);
    const b = gaussian([fanOut]);
    const s = (fanIn * fanOut) ** -0.25;
    const unit = run([x, w, b], () => nn.linear(x, w, b, DEMO));
    const plain = run([x, w, b], () => T.add(T.matmul(x, w, { scale: s }), b));
    expectScaled('out', unit.out, plain.out, 1);
    expectScaled('grad x', unit.grads[0], plain.grads[0], 1);
    // true dW = s·xᵀg; DEMO: xᵀg/rows
    expectScaled('grad W', unit.grads[1], plain.grads[1], 1 / rows / s);
    expectScaled('grad b', unit.grads[2], plain.grads[2], 1 / rows);
  });

  it('readout ("separate"): output in^-½ before the bias, input grad vocab^-½, W and b grads 1/rows', () => {
    const x = gaussian([rows, fanIn]);
    const w = gaussian([fanIn, fanOut]);
    const b = gaussian([fanOut]);
    const unit = run([x, w, b], () => nn.linearReadout(x, w, b, DEMO));
    const plain = run([x, w, b], () => T.add(T.matmul(x, w), b));
    const outOnly = run([x, w, b], () => T.add(T.matmul(x, w, { scale: fanIn ** -0.5 }), b));
    expectScaled('out', unit.out, outOnly.out, 1);
    expectScaled('grad x', unit.grads[0], plain.grads[0], fanOut ** -0.5);
    expectScaled('grad W', unit.grads[1], plain.grads[1], 1 / rows);
    expectScaled('grad b', unit.grads[2], plain.grads[2], 1 / rows);
  });
});

describe('matmul, softmax, dropout, layer norm, embedding', () => {
  it('matmul gmean: one scale (k^-½·n^-½·m^-½)^⅓ on the output and both gradients', () => {
    const [m, k, n] = [6, 10, 14];
    const a = gaussian([m, k]);
    const b = gaussian([k, n]);
    const s = (k ** -0.5 * n ** -0.5 * m ** -0.5) ** (1 / 3);
    const unit = run([a, b], () => nn.matmul(a, b, LIB));
    const plain = run([a, b], () => T.matmul(a, b));
    expectScaled('out', unit.out, plain.out, s);
    expectScaled('grad left', unit.grads[0], plain.grads[0], s);
    expectScaled('grad right', unit.grads[1], plain.grads[1], s);
  });

  it('softmax gmean: n/1.4702 on output and gradient', () => {
    const x = gaussian([5, 64]);
    const unit = run([x], () => nn.softmax(x, LIB));
    const plain = run([x], () => T.softmax(x));
    const s = 64 / Math.sqrt(1.31 * 1.65);
    expectScaled('out', unit.out, plain.out, s);
    expectScaled('grad', unit.grads[0], plain.grads[0], s);
  });

  it('dropout outside training still multiplies by √(1−p)', () => {
    const x = gaussian([100]);
    const unit = run([x], () => nn.dropout(x, 0.3, LIB, { training: false }));
    expectScaled('out', unit.out, x.toFloat32Array(), Math.sqrt(0.7));
    expectScaled('grad', unit.grads[0], T.tidy(() => T.randomNormal([100], 99, 7).toFloat32Array()), Math.sqrt(0.7));
  });

  it('layer norm: gain and bias grads rows^-½ (library) or 1/rows (DEMO), input untouched', () => {
    const x = gaussian([10, 16]);
    const g = gaussian([16]);
    const b = gaussian([16]);
    const plain = run([x, g, b], () => T.layerNorm(x, g, b, { eps: 1e-3 }));
    for (const [scaling, factor] of [
      [LIB, 10 ** -0.5],
      [DEMO, 1 / 10],
    ] as const) {
      const unit = run([x, g, b], () => nn.layerNorm(x, g, b, scaling, { eps: 1e-3 }));
      expectScaled('out', unit.out, plain.out, 1);
      expectScaled('grad x', unit.grads[0], plain.grads[0], 1);
      expectScaled('grad gain', unit.grads[1], plain.grads[1], factor);
      expectScaled('grad bias', unit.grads[2], plain.grads[2], factor);
    }
  });

  it('embedding: table grad (V/n)^½ (library) or V/n (DEMO)', () => {
    const table = gaussian([50, 8]);
    const ids = T.tensor(Int32Array.from({ length: 24 }, (_, i) => (i * 7) % 50), [4, 6]);
    const plain = run([table], () => T.embedding(table, ids));
    expectScaled('library', run([table], () => nn.embedding(table, ids, LIB)).grads[0], plain.grads[0], (50 / 24) ** 0.5);
    expectScaled('DEMO', run([table], () => nn.embedding(table, ids, DEMO)).grads[0], plain.grads[0], 50 / 24);
  });
});

describe('cross-entropy (§3.3, §7)', () => {
  const [rows, vocab] = [8, 30];
  const labels = () => T.tensor(Int32Array.from({ length: rows }, (_, i) => (i * 11) % vocab), [rows]);
  const mask = () => T.tensor([1, 1, 0, 1, 1, 1, 0, 1], [rows]);

  it('value: the ordinary masked mean in every rule set', () => {
    const logits = gaussian([rows, vocab]);
    T.tidy(() => {
      const reference = T.crossEntropy(logits, labels(), mask()).item();
      for (const s of [LIB, DEMO, nn.unitScaling('umup'), nn.REGULAR]) expect(nn.crossEntropy(logits, labels(), mask(), s).loss.item()).toBe(reference);
    });
  });

  it('library: logit grad (p − onehot)·mask·V/√(V−1), no 1/B; DEMO: × N/Σmask on top', () => {
    const logits = gaussian([rows, vocab]);
    const plain = run([logits], () => T.crossEntropy(logits, labels(), mask()), 3);
    const count = 6;
    // the regular mean-loss gradient is (p − onehot)·mask/count (both runs share the upstream scalar)
    const unitGrad = vocab / Math.sqrt(vocab - 1);
    const lib = run([logits], () => nn.crossEntropy(logits, labels(), mask(), LIB).loss, 3);
    expectScaled('library', lib.grads[0], plain.grads[0], count * unitGrad);
    const demo = run([logits], () => nn.crossEntropy(logits, labels(), mask(), DEMO).loss, 3);
    expectScaled('DEMO', demo.grads[0], plain.grads[0], rows * unitGrad);
  });
});

describe('residual, add, attention, conv', () => {
  it('paper residual: skip √(1−τ), branch √τ forward; gradients √τ into the branch, √(1−τ) into the skip', () => {
    const x = gaussian([4, 6]);
    const r = gaussian([4, 6]);
    const tau = 0.3;
    const split = run([x], () => {
      const { residual, skip } = nn.residualSplit(x, tau, LIB);
      return T.add(residual, skip, { scaleB: 2 });
    });
    const plainSplit = run([x], () => T.scale(x, 3));
    expectScaled('split grad', split.grads[0], plainSplit.grads[0], (Math.sqrt(tau) + 2 * Math.sqrt(1 - tau)) / 3);
    const added = run([r, x], () => nn.residualAdd(r, x, tau, LIB));
    const plainAdd = run([r, x], () => T.add(r, x));
    expect(Array.from(added.out)).toEqual(
      Array.from(T.tidy(() => T.add(r, x, { scaleA: Math.sqrt(tau), scaleB: Math.sqrt(1 - tau) }).toFloat32Array())),
    );
    expectScaled('add grad residual (forward-only weight)', added.grads[0], plainAdd.grads[0], 1);
    expectScaled('add grad skip (forward-only weight)', added.grads[1], plainAdd.grads[1], 1);
  });

  it('unit add, same shapes, gmean: 2^-⅙ ≈ 0.891 everywhere', () => {
    const a = gaussian([3, 5]);
    const b = gaussian([3, 5]);
    const unit = run([a, b], () => nn.add(a, b, LIB));
    const plain = run([a, b], () => T.add(a, b));
    expectScaled('out', unit.out, plain.out, 2 ** (-1 / 6));
    expectScaled('grad a', unit.grads[0], plain.grads[0], 2 ** (-1 / 6));
  });

  it('SDPA (2023-08 rule): σ = √(s/e) on the output and on the q, k, v gradients', () => {
    const [q, k, v] = [gaussian([2, 9, 4]), gaussian([2, 9, 4]), gaussian([2, 9, 4])];
    const sigma = Math.sqrt(9 / Math.E);
    const unit = run([q, k, v], () => nn.scaledDotProductAttention(q, k, v, LIB, { causal: true }));
    const plain = run([q, k, v], () => nn.scaledDotProductAttention(q, k, v, nn.REGULAR, { causal: true }));
    expectScaled('out', unit.out, plain.out, sigma);
    for (let i = 0; i < 3; i++) expectScaled(`grad ${'qkv'[i]}`, unit.grads[i], plain.grads[i], sigma);
  });

  it('conv1d (DEMO): kernel scaled by (k·Cin/g · k·Cout/g)^-¼, kernel grad 1/(B·L), bias grad 1/(B·L)', () => {
    const [B, L, C, k, g] = [2, 10, 8, 3, 2];
    const x = gaussian([B, L, C]);
    const w = gaussian([k, C / g, C]);
    const b = gaussian([C]);
    const s = ((k * C) / g * ((k * C) / g)) ** -0.25;
    const unit = run([x, w, b], () => nn.conv1d(x, w, b, DEMO, { groups: g }));
    const plain = run([x, w, b], () => T.add(T.conv1dCausal(x, w, { groups: g, scale: s }), b));
    expectScaled('out', unit.out, plain.out, 1);
    expectScaled('grad x', unit.grads[0], plain.grads[0], 1);
    expectScaled('grad kernel', unit.grads[1], plain.grads[1], 1 / (B * L) / s);
    expectScaled('grad bias', unit.grads[2], plain.grads[2], 1 / (B * L));
  });
});

describe('u-μP residual rule (§8.14)', () => {
  it('every branch of a kind contributes equally, the squares sum to 1, RMS/embedding = mult, attention/MLP = ratio', () => {
    for (const [mult, ratio] of [
      [1, 1],
      [2, 0.5],
      [0.5, 3],
    ]) {
      for (const branches of [2, 8, 16]) {
        const rule = nn.transformerResidualScalingRule(mult, ratio);
        // Run the residual stream forward: each branch adds unit variance with its weights.
        let embedding = 1;
        const contributions: number[] = [];
        for (let i = 0; i < branches; i++) {
          const w = nn.residualWeights(rule(i, branches), nn.unitScaling('umup'));
          embedding *= w.skip ** 2;
          for (let j = 0; j < contributions.length; j++) contributions[j] *= w.skip ** 2;
          contributions.push(w.branch ** 2);
        }
        expect(embedding + contributions.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
        // attention branches at even, MLP at odd indices
        const attention = contributions.filter((_, i) => i % 2 === 0);
        const mlp = contributions.filter((_, i) => i % 2 === 1);
        for (const c of attention) expect(c).toBeCloseTo(attention[0], 12);
        for (const c of mlp) expect(c).toBeCloseTo(mlp[0], 12);
        const total = (list: number[]) => list.reduce((a, b) => a + b, 0);
        expect(Math.sqrt((total(attention) + total(mlp)) / 2 / embedding)).toBeCloseTo(mult, 10);
        expect(Math.sqrt(total(attention) / total(mlp))).toBeCloseTo(ratio, 10);
      }
    }
  });
});
