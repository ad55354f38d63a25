import { describe, expect, it } from 'vitest';
import * as nn from '../../src/nn/index.ts';
import * as T from '../../src/tensor/index.ts';
import { correlated, expectUnit, gaussian, unitRun } from './helpers.ts';

/** unit-scaling-ops.md §8: unit-scaled ops keep unit std for unit-Gaussian inputs and gradients. */
const RULES = ['paper-library', 'paper-charlm', 'umup'] as const;
const LIBRARY_STYLE = ['paper-library', 'umup'] as const;
const none = (rules: nn.ScalingRules) => nn.unitScaling(rules, 'none');

describe('§8.1 the scaled primitive', () => {
  it('forward multiplies by fwd, backward by bwd, exactly', () => {
    T.tidy(() => {
      const x = T.tensor([1, -2, 0.5], [3]);
      x.requiresGrad = true;
      const y = T.scaled(x, 2, 3);
      expect(Array.from(y.toFloat32Array())).toEqual([2, -4, 1]);
      T.backward(T.sum(T.mul(y, T.tensor([1, 10, 100], [3]))));
      expect(Array.from(x.grad!.toFloat32Array())).toEqual([3, 30, 300]);
      x.grad!.dispose();
    });
  });
});

describe('§8.2 linear', () => {
  const shapes = [
    [256, 512, 1024],
    [512, 256, 128],
  ];
  it.each(LIBRARY_STYLE)('%s, unconstrained: output, input, weight and bias gradients', (rules) => {
    for (const [rows, fanIn, fanOut] of shapes) {
      const x = gaussian([rows, fanIn]);
      const w = gaussian([fanOut, fanIn]);
      const b = gaussian([fanOut]);
      // u-μP output scale for a unit output needs scale_power ½ (its default).
      const r = unitRun([x, w, b], () => [nn.linear(x, w, b, none(rules), { weightLayout: 'out-in' })], (o) =>
        gaussian([...o.shape], false),
      );
      // The bias (std 1) adds fanIn^-½-scaled variance 1/fanIn: negligible.
      expectUnit(`${rules} linear out ${fanIn}->${fanOut}`, r.outputs[0]);
      r.grads.forEach((g, i) => expectUnit(`${rules} linear grad ${['x', 'W', 'b'][i]}`, g));
    }
  });

  it.each(RULES)('%s, gmean: std(out)·std(grad x) ≈ 1 with std(out) ≈ (fanIn/fanOut)^¼', (rules) => {
    const x = gaussian([256, 1024]);
    const w = gaussian([1024, 4096]);
    const r = unitRun([x, w], () => [nn.linear(x, w, null, nn.unitScaling(rules, 'gmean'))]);
    expect(Math.abs(r.outputs[0] - (1024 / 4096) ** 0.25)).toBeLessThan(0.05);
    expectUnit(`${rules} gmean product`, r.outputs[0] * r.grads[0]);
  });

  it.each(RULES)('%s: to_output_scale and to_grad_input_scale make one side unit', (rules) => {
    const x = gaussian([256, 256]);
    const w = gaussian([256, 2048]);
    const out = unitRun([x, w], () => [nn.linear(x, w, null, nn.unitScaling(rules, 'to_output_scale'))]);
    expectUnit('to_output_scale: out', out.outputs[0]);
    expect(out.grads[0]).toBeGreaterThan(2);
    const grad = unitRun([x, w], () => [nn.linear(x, w, null, nn.unitScaling(rules, 'to_grad_input_scale'))]);
    expectUnit('to_grad_input_scale: grad x', grad.grads[0]);
    expect(grad.outputs[0]).toBeLessThan(0.5);
  });

  it('paper-charlm, separate: output and input gradient unit', () => {
    const x = gaussian([256, 512]);
    const w = gaussian([512, 128]);
    const r = unitRun([x, w], () => [nn.linear(x, w, null, none('paper-charlm'))]);
    expectUnit('out', r.outputs[0]);
    expectUnit('grad x', r.grads[0]);
  });

  it('§8.13 paper-charlm with batch-correlated inputs and gradients: weight and bias gradients unit', () => {
    // One underlying row: the statistics come from fanIn (fanOut) samples, so keep both large.
    for (const [rows, fanIn, fanOut] of [
      [256, 1024, 2048],
      [64, 4096, 1024],
    ]) {
      const x = correlated(rows, fanIn);
      const w = gaussian([fanIn, fanOut]);
      // DEMO's Dense adds its (zero-initialised) bias after the scaled product.
      const b = T.zeros([fanOut]);
      b.requiresGrad = true;
      const r = unitRun([x, w, b], () => [nn.linear(x, w, b, nn.unitScaling('paper-charlm'))], (o) => correlated(o.shape[0], o.shape[1], false));
      expectUnit('grad W', r.grads[1], 0.1);
      expectUnit('grad b', r.grads[2], 0.1);
      expectUnit('out · grad x', r.outputs[0] * r.grads[0], 0.1);
    }
  });
});

describe('§8.3 matmul', () => {
  it.each(RULES)('%s: unconstrained all three unit; gmean product unit', (rules) => {
    for (const [m, k, n] of [
      [256, 512, 1024],
      [512, 1024, 128],
    ]) {
      const a = gaussian([m, k]);
      const b = gaussian([k, n]);
      const r = unitRun([a, b], () => [nn.matmul(a, b, none(rules))]);
      expectUnit('out', r.outputs[0]);
      expectUnit('grad left', r.grads[0]);
      expectUnit('grad right', r.grads[1]);
      const g = unitRun([a, b], () => [nn.matmul(a, b, nn.unitScaling(rules, 'gmean'))]);
      expect(Math.abs(g.outputs[0] * g.grads[0] * g.grads[1] - 1)).toBeLessThan(0.05);
    }
  });
});

describe('§8.4 nonlinearities and softmax', () => {
  const kinds = ['gelu', 'relu', 'tanh', 'sigmoid'] as const;
  it.each(RULES)('%s: unconstrained output and gradient unit; to_output / to_grad make only that side unit', (rules) => {
    for (const shape of [
      [4096],
      [64, 512],
      [8, 32, 128],
    ]) {
      for (const kind of kinds) {
        const x = gaussian(shape);
        const r = unitRun([x], () => [nn[kind](x, none(rules))]);
        expectUnit(`${rules} ${kind} out [${shape}]`, r.outputs[0]);
        expectUnit(`${rules} ${kind} grad [${shape}]`, r.grads[0]);
      }
    }
    const x = gaussian([64, 512]);
    const out = unitRun([x], () => [nn.gelu(x, nn.unitScaling(rules, 'to_output_scale'))]);
    expectUnit('gelu to_output_scale: out', out.outputs[0]);
    const grad = unitRun([x], () => [nn.gelu(x, nn.unitScaling(rules, 'to_grad_input_scale'))]);
    expectUnit('gelu to_grad_input_scale: grad', grad.grads[0]);
    expect(Math.abs(out.grads[0] - 1)).toBeGreaterThan(0.1);
  });

  it.each(['paper-library', 'paper-charlm'] as const)('%s softmax over 4096 entries: output and gradient unit', (rules) => {
    for (const shape of [
      [8, 4096],
      [2, 4, 4096],
    ]) {
      const x = gaussian(shape);
      const r = unitRun([x], () => [nn.softmax(x, none(rules))]);
      expectUnit('softmax out', r.outputs[0]);
      expectUnit('softmax grad', r.grads[0]);
    }
  });

  it('umup softmax keeps its interpolated rule (n^0.9 at mult 1), which is not unit for independent logits', () => {
    const x = gaussian([8, 4096]);
    const r = unitRun([x], () => [nn.softmax(x, none('umup'))]);
    // std(softmax) ≈ 1.31/n for N(0,1) logits, so n^0.9 gives 1.31·n^-0.1.
    expect(r.outputs[0]).toBeCloseTo(1.31 * 4096 ** -0.1, 1);
  });
});

describe('§8.5 dropout', () => {
  it.each(RULES)('%s: output and gradient unit for p from 0.01 to 0.99', (rules) => {
    for (const p of [0.01, 0.1, 0.5, 0.9, 0.99]) {
      const x = gaussian([1 << 20]);
      const r = unitRun([x], () => [nn.dropout(x, p, none(rules), { training: true })]);
      expectUnit(`dropout ${p} out`, r.outputs[0]);
      expectUnit(`dropout ${p} grad`, r.grads[0]);
    }
  });
});

describe('§8.6 normalisation', () => {
  it.each(LIBRARY_STYLE)('%s layer norm and rms norm: output, input, gain and bias gradients unit', (rules) => {
    for (const [rows, width] of [
      [1024, 256],
      [256, 1024],
    ]) {
      const x = gaussian([rows, width]);
      const g = T.ones([width]);
      g.requiresGrad = true;
      const b = T.zeros([width]);
      b.requiresGrad = true;
      const r = unitRun([x, g, b], () => [nn.layerNorm(x, g, b, none(rules), { eps: 1e-5 })]);
      expectUnit('LN out', r.outputs[0]);
      r.grads.forEach((s, i) => expectUnit(`LN grad ${['x', 'gain', 'bias'][i]}`, s));
      const rms = unitRun([x, g], () => [nn.rmsNorm(x, g, none(rules), { eps: 1e-5 })]);
      expectUnit('RMS out', rms.outputs[0]);
      rms.grads.forEach((s, i) => expectUnit(`RMS grad ${['x', 'weight'][i]}`, s));
    }
  });

  it('paper-charlm layer norm with batch-correlated gradients: gain and bias gradients unit', () => {
    const x = gaussian([512, 256]);
    const g = T.ones([256]);
    g.requiresGrad = true;
    const b = T.zeros([256]);
    b.requiresGrad = true;
    const r = unitRun([x, g, b], () => [nn.layerNorm(x, g, b, nn.unitScaling('paper-charlm'), { eps: 1e-5 })], (o) =>
      correlated(o.shape[0], o.shape[1], false),
    );
    expectUnit('grad bias', r.grads[2], 0.1);
  });
});

describe('§8.7 residuals with a unit linear branch', () => {
  const taus = { 'paper-library': [0.2, 0.5, 0.8], 'paper-charlm': [0.2, 0.5, 0.8], umup: [0.5, 1, 2] } as const;
  it.each(RULES)('%s: output, input gradient, branch output and branch gradients unit', (rules) => {
    for (const tau of taus[rules]) {
      // DEMO's 1/B weight gradient assumes rows that agree across the batch (§8.13).
      const x = rules === 'paper-charlm' ? correlated(512, 256) : gaussian([512, 256]);
      const w = gaussian([256, 256]);
      const scaling = nn.unitScaling(rules, 'none');
      const r = unitRun([x, w], (tap) => {
        const { residual, skip } = nn.residualSplit(x, tau, scaling);
        const branchIn = tap('branch.in', residual);
        const branchOut = tap('branch.out', nn.linear(branchIn, w, null, scaling));
        return [nn.residualAdd(branchOut, skip, tau, scaling)];
      }, (o) => (rules === 'paper-charlm' ? correlated(o.shape[0], o.shape[1], false) : gaussian([...o.shape], false)));
      expectUnit(`τ ${tau} out`, r.outputs[0]);
      expectUnit(`τ ${tau} grad x`, r.grads[0]);
      expectUnit(`τ ${tau} branch out`, r.taps.get('branch.out')!.value);
      expectUnit(`τ ${tau} branch out grad`, r.taps.get('branch.out')!.grad);
      expectUnit(`τ ${tau} branch in grad`, r.taps.get('branch.in')!.grad);
      expectUnit(`τ ${tau} grad W`, r.grads[1]);
    }
  });
});

describe('§8.8 embedding', () => {
  it.each(LIBRARY_STYLE)('%s (V=4096, d=64, 16×32 ids): output and table gradient unit', (rules) => {
    const table = gaussian([4096, 64]);
    const ids = T.tensor(Int32Array.from({ length: 512 }, (_, i) => (i * 2654435761) % 4096), [16, 32]);
    const r = unitRun([table], () => [nn.embedding(table, ids, none(rules))]);
    expectUnit('out', r.outputs[0]);
    expectUnit('grad table', r.grads[0]);
  });
});

describe('§8.9 cross-entropy', () => {
  it.each(RULES)('%s: the loss equals the ordinary mean; logit gradient unit', (rules) => {
    for (const rows of [1, 4096]) {
      const logits = gaussian([rows, 256]);
      const labels = T.tensor(Int32Array.from({ length: rows }, (_, i) => (i * 97) % 256), [rows]);
      T.tidy(() => {
        const reference = T.noGrad(() => T.crossEntropy(logits, labels)).item();
        const { loss } = nn.crossEntropy(logits, labels, null, none(rules));
        expect(loss.item()).toBe(reference);
        T.backward(loss);
      });
      if (rows > 1) expectUnit(`${rules} grad logits`, T.tidy(() => T.sqrt(T.mean(T.square(logits.grad!))).item()));
      logits.grad!.dispose();
      logits.grad = null;
    }
  });
});

describe('§8.10 scaled dot-product attention', () => {
  it.each(['paper-library', 'paper-charlm'] as const)('%s (the 2023-08 rule; S = 64, d = 64): output and q, k, v gradients unit', (rules) => {
    const [q, k, v] = [gaussian([256, 64, 64]), gaussian([256, 64, 64]), gaussian([256, 64, 64])];
    const r = unitRun([q, k, v], () => [nn.scaledDotProductAttention(q, k, v, nn.unitScaling(rules), { causal: false })]);
    expectUnit('out', r.outputs[0]);
    r.grads.forEach((g, i) => expectUnit(`grad ${'qkv'[i]}`, g, 0.15));
  });

  it('umup (S = 256, d = 64): output unit', () => {
    const [q, k, v] = [gaussian([16, 256, 64]), gaussian([16, 256, 64]), gaussian([16, 256, 64])];
    const r = unitRun([q, k, v], () => [nn.scaledDotProductAttention(q, k, v, nn.unitScaling('umup'), { causal: false })]);
    expectUnit('out', r.outputs[0]);
  });
});

describe('unit add and conv1d', () => {
  it.each(LIBRARY_STYLE)('%s add, same shape and broadcast: output and gradients unit', (rules) => {
    const a = gaussian([512, 256]);
    const b = gaussian([512, 256]);
    const r = unitRun([a, b], () => [nn.add(a, b, none(rules))]);
    expectUnit('out', r.outputs[0]);
    r.grads.forEach((g) => expectUnit('grad', g));
    const c = gaussian([256]);
    const rb = unitRun([a, c], () => [nn.add(a, c, none(rules))]);
    expectUnit('broadcast grad', rb.grads[1]);
  });

  it.each(LIBRARY_STYLE)('%s causal grouped conv1d: output, input and kernel gradients unit', (rules) => {
    for (const [k, c, groups] of [
      [7, 128, 8],
      [3, 64, 1],
    ]) {
      const x = gaussian([8, 256, c]);
      const w = gaussian([k, c / groups, c]);
      const r = unitRun([x, w], () => [nn.conv1d(x, w, null, none(rules), { groups })]);
      expectUnit('out', r.outputs[0]);
      expectUnit('grad x', r.grads[0]);
      expectUnit('grad kernel', r.grads[1]);
    }
  });
});
