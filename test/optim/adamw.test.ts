import { describe, expect, it } from 'vitest';
import { AdamW } from '../../src/optim/index.ts';
import { parameter, setGradient, values } from './helpers.ts';

const BASE = { lr: 0.01, lrDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-7, weightDecay: 0 };

/** The update of §A5 written out in float64, one element, for comparison. */
function referenceAdamW(theta: number, grads: number[], s: typeof BASE & { lrScale?: number }): number {
  let m = 0, v = 0;
  grads.forEach((g, i) => {
    const t = i + 1;
    m = s.beta1 * m + (1 - s.beta1) * g;
    v = s.beta2 * v + (1 - s.beta2) * g * g;
    const stepSize = (s.lr * (s.lrScale ?? 1) * 2 ** (-(t - 1) * s.lrDecay) * Math.sqrt(1 - s.beta2 ** t)) / (1 - s.beta1 ** t);
    theta = theta - s.lr * s.weightDecay * theta - (stepSize * m) / (Math.sqrt(v) + s.eps);
  });
  return theta;
}

describe('AdamW (§A5)', () => {
  it('first step moves each weight by lr against the sign of its gradient (bias correction folded in)', () => {
    // t = 1: m = (1−β1)g, v = (1−β2)g², step size lr·√(1−β2)/(1−β1), so the update is
    // lr·g/(|g| + ε/√(1−β2)) ≈ lr·sign(g).
    const p = parameter('w', [1, -2, 0.5]);
    const opt = new AdamW([p], BASE);
    setGradient(p, [3, -0.25, 1e-3]);
    opt.step(1);
    expect(values(p)[0]).toBeCloseTo(0.99, 6);
    expect(values(p)[1]).toBeCloseTo(-1.99, 6);
    // a tiny gradient feels ε: 1e-3/(1e-3 + 1e-7/√0.001) = 0.99685
    expect(values(p)[2]).toBeCloseTo(0.5 - 0.01 * (1e-3 / (1e-3 + 1e-7 / Math.sqrt(0.001))), 6);
    opt.dispose();
  });

  it('matches the written-out update over several steps with lr decay 2^(−(t−1)·decay)', () => {
    const s = { ...BASE, lrDecay: 0.5 };
    const grads = [0.3, -0.1, 0.7, 0.2, -0.4];
    const p = parameter('w', [0.8]);
    const opt = new AdamW([p], s);
    for (const g of grads) {
      setGradient(p, [g]);
      opt.step(1);
    }
    expect(values(p)[0]).toBeCloseTo(referenceAdamW(0.8, grads, s), 6);
    // without decay the result differs, so the decay was applied
    expect(Math.abs(referenceAdamW(0.8, grads, BASE) - values(p)[0])).toBeGreaterThan(1e-3);
    opt.dispose();
  });

  it('applies weight decay with the undecayed lr, and not to excluded parameters', () => {
    // zero gradient: m = v = 0, so only the decay term lr·wd·θ acts, every step the same size
    // although lr_t halves each step
    const s = { ...BASE, lr: 0.1, lrDecay: 1, weightDecay: 0.5 };
    const decayed = parameter('w', [2]);
    const excluded = parameter('b', [2], { weightDecay: false });
    const opt = new AdamW([decayed, excluded], s);
    for (let i = 0; i < 3; i++) opt.step(1);
    expect(values(decayed)[0]).toBeCloseTo(2 * (1 - 0.1 * 0.5) ** 3, 6);
    expect(values(excluded)[0]).toBe(2);
    opt.dispose();
  });

  it('scales the gradient step, not the weight decay, by the parameter lrScale', () => {
    const s = { ...BASE, weightDecay: 0.1 };
    const half = parameter('gain', [1], { lrScale: 0.5 });
    const opt = new AdamW([half], s);
    setGradient(half, [2]);
    opt.step(1);
    // θ − lr·wd·θ − 0.5·lr·sign(g)
    expect(values(half)[0]).toBeCloseTo(1 - 0.01 * 0.1 - 0.5 * 0.01, 6);
    opt.dispose();
  });

  it('uses gradScale on the gradient before the moments (only ε notices a scale)', () => {
    const s = { ...BASE, eps: 1e-3 };
    const a = parameter('a', [1]);
    const b = parameter('b', [1]);
    const optA = new AdamW([a], s);
    const optB = new AdamW([b], s);
    setGradient(a, [0.01]);
    setGradient(b, [0.01 * 1024]);
    optA.step(1);
    optB.step(1 / 1024);
    expect(values(b)[0]).toBe(values(a)[0]);
    expect(values(a)[0]).toBeCloseTo(referenceAdamW(1, [0.01], s), 6);
    optA.dispose();
    optB.dispose();
  });

  it('keeps its step counter on the device and exposes all state for checkpoints', () => {
    const p = parameter('w', [1, 2]);
    const opt = new AdamW([p], BASE);
    opt.step(1);
    opt.step(1);
    const state = opt.stateTensors();
    expect([...state.keys()].sort()).toEqual(['adamw.m.w', 'adamw.v.w', 'step']);
    expect(state.get('step')!.toArray()).toEqual(Int32Array.from([2]));
    opt.dispose();
  });
});
