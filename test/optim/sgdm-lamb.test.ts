import { describe, expect, it } from 'vitest';
import { Lamb, Sgdm, StaticLossScale } from '../../src/optim/index.ts';
import { parameter, setGradient, values } from './helpers.ts';

describe('SGD with momentum (§A5)', () => {
  it('divides a static loss scale back out and accumulates momentum μ·buf + g', () => {
    const lossScale = new StaticLossScale(2048, true);
    const p = parameter('w', [1, -1]);
    const opt = new Sgdm([p], { lr: 0.1, lrDecay: 0, momentum: 0.9, weightDecay: 0 });
    const { gradScale } = lossScale.decide();
    expect(gradScale).toBe(1 / 2048);
    setGradient(p, [0.5 * 2048, -0.25 * 2048]);
    opt.step(gradScale);
    // buf = g; θ = θ − lr·buf
    expect(values(p)).toEqual([1 - 0.1 * 0.5, -1 + 0.1 * 0.25].map(Math.fround));
    setGradient(p, [0.5 * 2048, 0]);
    opt.step(gradScale);
    // buf = 0.9·[0.5, −0.25] + [0.5, 0] = [0.95, −0.225]
    expect(values(p)[0]).toBeCloseTo(1 - 0.05 - 0.1 * 0.95, 6);
    expect(values(p)[1]).toBeCloseTo(-1 + 0.025 + 0.1 * 0.225, 6);
    opt.dispose();
  });

  it('decays lr as 2^(−(t−1)·decay), scales it by lrScale and decays weights with the undecayed lr', () => {
    const p = parameter('b', [1], { lrScale: 0.25, weightDecay: true });
    const opt = new Sgdm([p], { lr: 0.1, lrDecay: 1, momentum: 0, weightDecay: 0.2 });
    let expected = 1;
    for (let t = 1; t <= 3; t++) {
      setGradient(p, [1]);
      opt.step(1);
      expected = expected - 0.1 * 0.2 * expected - 0.1 * 0.25 * 2 ** -(t - 1) * 1;
    }
    expect(values(p)[0]).toBeCloseTo(expected, 6);
    opt.dispose();
  });

  it('Adam-style optimisers ignore a static loss scale (gradScale 1), as the paper', () => {
    expect(new StaticLossScale(2048, false).decide()).toEqual({ apply: true, gradScale: 1 });
  });
});

describe('LAMB', () => {
  const settings = { lr: 0.1, warmupSteps: 0, totalSteps: 10, beta1: 0.9, beta2: 0.999, eps: 1e-6, weightDecay: 0 };

  it('scales the update by the trust ratio ‖θ‖/‖u‖ under a linear decay schedule', () => {
    // step 1: m̂ = g, v̂ = g², so u = g/(|g|+ε) ≈ sign(g) = [1, 1]; ‖θ‖ = 5, ‖u‖ = √2;
    // lr_1 = 0.1·(10−1)/10 = 0.09
    const p = parameter('w', [3, 4]);
    const opt = new Lamb([p], settings);
    setGradient(p, [1, 2]);
    opt.step(1);
    const trust = 5 / Math.SQRT2;
    expect(values(p)[0]).toBeCloseTo(3 - 0.09 * trust, 5);
    expect(values(p)[1]).toBeCloseTo(4 - 0.09 * trust, 5);
    opt.dispose();
  });

  it('adds weight decay to u, and excludes parameters without weightDecay from decay and trust ratio', () => {
    const w = parameter('w', [3, 4]);
    const bias = parameter('bias', [3, 4], { weightDecay: false });
    const opt = new Lamb([w, bias], { ...settings, weightDecay: 0.5 });
    setGradient(w, [1, 1]);
    setGradient(bias, [1, 1]);
    opt.step(1);
    // w: u = [1 + 1.5, 1 + 2] = [2.5, 3], ‖u‖ = √15.25, trust = 5/‖u‖
    const trust = 5 / Math.sqrt(2.5 ** 2 + 3 ** 2);
    expect(values(w)[0]).toBeCloseTo(3 - 0.09 * trust * 2.5, 5);
    expect(values(w)[1]).toBeCloseTo(4 - 0.09 * trust * 3, 5);
    // bias: u = [1, 1], trust 1
    expect(values(bias)[0]).toBeCloseTo(3 - 0.09, 5);
    expect(values(bias)[1]).toBeCloseTo(4 - 0.09, 5);
    opt.dispose();
  });

  it('warms the lr up linearly from 0', () => {
    const p = parameter('v', [1], { weightDecay: false });
    const opt = new Lamb([p], { ...settings, warmupSteps: 4 });
    setGradient(p, [1]);
    opt.step(1);
    expect(values(p)[0]).toBeCloseTo(1 - 0.1 * 0.25, 5);
    opt.dispose();
  });
});
