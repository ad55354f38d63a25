/**
 * Optimiser kernels against the CPU twin. Both compute in float64 and round once to float32; the
 * only differences come from the device's pow/sqrt against V8's (last float64 ulps), so results
 * agree to within one float32 ulp (rel 2^-22).
 */
import { describe, it } from 'vitest';
import { cuda, expectClose, noCudaReason, positiveValues, runBoth, testValues } from './helpers.ts';

const ONE_ULP = { rel: 2 ** -22, abs: 1e-30 };

describe.skipIf(!cuda)(`CUDA optimiser kernels ${noCudaReason}`, () => {
  const n = 3001;
  const state = () => ({
    param: testValues(n, 141),
    grad: testValues(n, 142, 0.1),
    m: testValues(n, 143, 0.01),
    v: positiveValues(n, 144, 1e-4, 1e-2),
    update: new Float32Array(n),
    step: new Int32Array([7]),
  });

  it('adamw', () => {
    const { cpu, gpu } = runBoth(state(), (b, s) => {
      b.adamw({
        param: s.param!, grad: s.grad!, m: s.m!, v: s.v!, n, step: s.step!, lr: 1e-3, lrDecay: 0.05, lrScale: 0.5,
        beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, gradScale: 2,
      });
    }, ['param', 'm', 'v']);
    for (const name of ['param', 'm', 'v']) expectClose(gpu[name]!, cpu[name]!, ONE_ULP, `adamw ${name}`);
  });

  it('sgdm', () => {
    const { cpu, gpu } = runBoth(state(), (b, s) => {
      b.sgdm({ param: s.param!, grad: s.grad!, momentum: s.m!, n, step: s.step!, lr: 0.1, lrDecay: 0.1, lrScale: 2, mu: 0.9, weightDecay: 1e-4, gradScale: 0.5 });
    }, ['param', 'm']);
    for (const name of ['param', 'm']) expectClose(gpu[name]!, cpu[name]!, ONE_ULP, `sgdm ${name}`);
  });

  for (const useTrustRatio of [true, false]) {
    it(`lamb update then apply (trust ratio ${useTrustRatio ? 'on' : 'off'})`, () => {
      const { cpu, gpu } = runBoth({ ...state(), wNorm: new Float32Array(1), uNorm: new Float32Array(1) }, (b, s) => {
        b.lambUpdate({ param: s.param!, grad: s.grad!, m: s.m!, v: s.v!, update: s.update!, n, step: s.step!, beta1: 0.9, beta2: 0.999, eps: 1e-6, weightDecay: 0.01, gradScale: 1 });
        b.reduce('sumSquares', s.param!, [n], s.wNorm!, [1], 1);
        b.reduce('sumSquares', s.update!, [n], s.uNorm!, [1], 1);
        b.lambApply({ param: s.param!, update: s.update!, paramNormSq: s.wNorm!, updateNormSq: s.uNorm!, n, step: s.step!, lr: 2e-3, warmupSteps: 10, totalSteps: 100, useTrustRatio });
      }, ['param', 'update', 'm', 'v']);
      for (const name of ['m', 'v', 'update']) expectClose(gpu[name]!, cpu[name]!, ONE_ULP, `lamb ${name}`);
      // The trust ratio comes from float32 norms whose float64 sums differ in order: rel 1e-6.
      expectClose(gpu.param!, cpu.param!, { rel: 1e-6 }, 'lamb param');
    });
  }
});
