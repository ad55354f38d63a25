import { describe, expect, it } from 'vitest';
import { AdamW, DynamicLossScale, ensureGradients, gradientsFinite } from '../../src/optim/index.ts';
import { parameter, setGradient, values } from './helpers.ts';

describe('dynamic loss scaling', () => {
  it('detects NaN and ±inf anywhere in the gradients', () => {
    const a = parameter('a', [0, 0]);
    const b = parameter('b', [0, 0, 0]);
    ensureGradients([a, b]);
    setGradient(a, [1e30, -1e30]);
    setGradient(b, [3, 4, 5]);
    expect(gradientsFinite([a, b])).toBe(true);
    setGradient(b, [3, Infinity, 5]);
    expect(gradientsFinite([a, b])).toBe(false);
    setGradient(b, [3, 4, NaN]);
    expect(gradientsFinite([a, b])).toBe(false);
    setGradient(b, [-Infinity, 4, 5]);
    expect(gradientsFinite([a, b])).toBe(false);
  });

  it('skips the step and shrinks the scale on non-finite gradients; grows after growth_interval good steps', () => {
    const p = parameter('w', [1]);
    const opt = new AdamW([p], { lr: 0.01, lrDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-7, weightDecay: 0 });
    const scaler = new DynamicLossScale({ init: 1024, growth_interval: 3, factor: 2 });

    const stepWith = (grad: number) => {
      setGradient(p, [grad]);
      const decision = scaler.decide([p]);
      if (decision.apply) opt.step(decision.gradScale);
      return decision;
    };

    expect(stepWith(Infinity)).toEqual({ apply: false, gradScale: 1 / 1024 });
    expect(scaler.scale).toBe(512);
    expect(values(p)).toEqual([1]);
    expect(opt.stateTensors().get('step')!.toArray()).toEqual(Int32Array.from([0]));

    // gradients are unscaled by the scale that produced them
    expect(stepWith(512)).toEqual({ apply: true, gradScale: 1 / 512 });
    expect(values(p)[0]).toBeCloseTo(0.99, 6);
    stepWith(512);
    expect(scaler.scale).toBe(512);
    stepWith(512);
    expect(scaler.scale).toBe(1024);
    expect(scaler.state()).toEqual({ scale: 1024, goodSteps: 0 });
    expect(opt.stateTensors().get('step')!.toArray()).toEqual(Int32Array.from([3]));

    stepWith(NaN);
    expect(scaler.state()).toEqual({ scale: 512, goodSteps: 0 });
    opt.dispose();
  });

  it('restores its state from a checkpoint', () => {
    const scaler = new DynamicLossScale({ init: 65536, growth_interval: 2000, factor: 2 });
    scaler.restore({ scale: 256, goodSteps: 17 });
    expect(scaler.scale).toBe(256);
    expect(scaler.state()).toEqual({ scale: 256, goodSteps: 17 });
  });
});
