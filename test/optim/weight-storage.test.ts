import { describe, expect, it } from 'vitest';
import { parseFormat } from '../../src/formats/registry.ts';
import { AdamW, Sgdm } from '../../src/optim/index.ts';
import * as T from '../../src/tensor/index.ts';
import { parameter, setGradient, values } from './helpers.ts';

const FP16_SR: T.CastSpec = { format: parseFormat('fp16'), rounding: 'stochastic', overflow: 'inf' };
const FP16_NEAREST: T.CastSpec = { ...FP16_SR, rounding: 'nearest' };

function isFp16(x: number): boolean {
  const rounded = T.tidy(() => {
    const t = T.tensor([x]);
    T.quantiseInPlace(t, FP16_NEAREST);
    return t.item();
  });
  return rounded === x;
}

describe('low-precision weight storage (§A5 FP16)', () => {
  it('stores FP16 weights and Adam m in FP16 with stochastic rounding, v in FP32', () => {
    T.setRandomContext(new T.RandomContext(7));
    const n = 4096;
    const p = parameter('w', new Array(n).fill(1));
    const opt = new AdamW([p], { lr: 1e-4, lrDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-7, weightDecay: 0 }, FP16_SR);
    setGradient(p, Array.from({ length: n }, (_, i) => 0.001 + i * 1e-7));
    T.randomContext().beginStep();
    opt.step(1);
    const w = values(p);
    expect(w.every(isFp16)).toBe(true);
    // 1 − 1e-4 lies between the FP16 neighbours 1 − 2^-11 and 1: nearest rounding would keep every
    // weight at 1; stochastic rounding keeps the mean update (up to sampling noise, ±2e-5)
    expect(new Set(w).size).toBe(2);
    const mean = w.reduce((s, x) => s + x, 0) / n;
    expect(mean).toBeGreaterThan(1 - 1e-4 - 2e-5);
    expect(mean).toBeLessThan(1 - 1e-4 + 2e-5);
    const state = opt.stateTensors();
    expect(Array.from(state.get('adamw.m.w')!.toFloat32Array()).every(isFp16)).toBe(true);
    expect(Array.from(state.get('adamw.v.w')!.toFloat32Array()).some((x) => !isFp16(x))).toBe(true);
    opt.dispose();
  });

  it('rounds SGD momentum to the weight format', () => {
    const p = parameter('w', [1, 2]);
    const opt = new Sgdm([p], { lr: 0.5, lrDecay: 0, momentum: 0.9, weightDecay: 0 }, FP16_NEAREST);
    setGradient(p, [1 / 3, 1e-9]);
    opt.step(1);
    const momentum = Array.from(opt.stateTensors().get('sgdm.momentum.w')!.toFloat32Array());
    expect(momentum[0]).not.toBe(Math.fround(1 / 3));
    expect(momentum.every(isFp16)).toBe(true);
    expect(values(p).every(isFp16)).toBe(true);
    opt.dispose();
  });

  it('leaves FP32 weights (fp32, fp8 and master-weight policies) unrounded', () => {
    const p = parameter('w', [1]);
    const opt = new AdamW([p], { lr: 1e-4, lrDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-7, weightDecay: 0 });
    setGradient(p, [1]);
    opt.step(1);
    expect(values(p)[0]).toBeCloseTo(1 - 1e-4, 7);
    expect(isFp16(values(p)[0])).toBe(false);
    opt.dispose();
  });
});
