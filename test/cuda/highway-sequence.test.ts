/**
 * Parity of the whole-sequence FP32 RHN kernels with their CPU twins. Both sum in the same order
 * and round every product and sum to float32 (--fmad=false); tanh and σ are float64 on both sides
 * but the device's float64 tanh/exp may differ from V8's in the last bit, which can reach a
 * float32 result and then travel along the recurrence: hence a tolerance, not equal bits.
 */
import { describe, expect, it } from 'vitest';
import { cuda, expectClose, noCudaReason, runBoth, testValues } from './helpers.ts';

const TOLERANCE = { rel: 1e-5, absOfMax: 1e-6 };

describe.skipIf(cuda === null)(`highwaySequence on CUDA ${noCudaReason}`, () => {
  for (const [B, L, H] of [
    [3, 7, 5],
    [8, 256, 128],
    [2, 40, 512],
  ] as const) {
    it(`forward and backward match the CPU twin (B ${B}, L ${L}, H ${H})`, () => {
      const dims = { batch: B, width: H, length: L };
      const forward = runBoth(
        {
          projected: testValues(B * L * 2 * H, 1),
          weight: testValues(H * 2 * H, 2, 1 / Math.sqrt(H)),
          initial: testValues(B * H, 3, 0.5),
          states: new Float32Array(B * L * H),
          previous: new Float32Array(B * L * H),
          pre: new Float32Array(B * L * 2 * H),
        },
        (backend, s) => backend.highwaySequence({ projected: s.projected!, weight: s.weight!, initial: s.initial!, states: s.states!, previous: s.previous!, pre: s.pre!, ...dims, scale: 0.8 }),
        ['states', 'previous', 'pre'],
      );
      for (const name of ['states', 'previous', 'pre']) expectClose(forward.gpu[name]!, forward.cpu[name]!, TOLERANCE, name);
      // the recurrence really ran: the last state differs from the first
      expect(forward.cpu.states![(L - 1) * H]).not.toBe(forward.cpu.states![0]);

      // the backward from the CPU's saved tensors on both sides, so only the backward is compared
      const backward = runBoth(
        {
          pre: forward.cpu.pre as Float32Array,
          previous: forward.cpu.previous as Float32Array,
          weight: testValues(H * 2 * H, 2, 1 / Math.sqrt(H)),
          gradStates: testValues(B * L * H, 4),
          gradProjected: new Float32Array(B * L * 2 * H),
          gradInitial: new Float32Array(B * H),
        },
        (backend, s) =>
          backend.highwaySequenceGrad({ pre: s.pre!, previous: s.previous!, weight: s.weight!, gradStates: s.gradStates!, gradProjected: s.gradProjected!, gradInitial: s.gradInitial!, ...dims, gradScale: 1.1 }),
        ['gradProjected', 'gradInitial'],
      );
      for (const name of ['gradProjected', 'gradInitial']) expectClose(backward.gpu[name]!, backward.cpu[name]!, { rel: 1e-4, absOfMax: 1e-5 }, name);
    });
  }

  it('refuses a cell wider than one thread per gate column allows', () => {
    const s = cuda!.alloc(1, 'f32');
    expect(() =>
      cuda!.highwaySequence({ projected: s, weight: s, initial: s, states: s, previous: s, pre: s, batch: 1, width: 513, length: 1, scale: 1 }),
    ).toThrow(/exceeds 512/);
    cuda!.release(s);
  });
});
