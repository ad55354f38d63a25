/**
 * The fused Recurrent Highway Network step, CUDA against the CPU twin.
 * Tolerances: both sides round at the same points with the same quantise_nearest, and evaluate
 * tanh, σ and their derivatives in float64 with the same formulas, so results are expected to be
 * bit-identical except where the device's float64 tanh/exp differ from V8's in the last bit and
 * that reaches a float32 (or format) rounding. That happens mostly in tanh' = 1 − t² for
 * |pre| ≳ 8, where the cancellation magnifies it, so at most 1% of the elements may differ, each
 * by no more than a few float32 ulps (fp32: rel 1e-5, plus 1e-6 of the largest value for the
 * tiny saturated derivatives) or, where a format rounding flips and carries on, one format ulp
 * (fp16: rel 2e-3, bf16 and the fp8 grid: rel 1.6e-2, plus the same fraction of the largest
 * value). Untouched slots of the projected gradient must keep their bits exactly.
 */
import { describe, expect, it } from 'vitest';
import type { Backend, NearestRounding, Storage } from '../../src/backend/backend.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import { cuda, expectClose, expectSameBits, noCudaReason, runBoth, runOn, testValues, type HostArray, type Tolerance } from './helpers.ts';

interface Mode {
  readonly name: string;
  readonly round: NearestRounding | null;
  readonly tolerance: Tolerance;
}

const MODES: readonly Mode[] = [
  { name: 'fp32', round: null, tolerance: { rel: 1e-5, absOfMax: 1e-6 } },
  { name: 'fp16', round: { format: parseFormat('fp16'), overflow: 'inf', viaFp16: false }, tolerance: { rel: 2e-3, absOfMax: 2e-3 } },
  { name: 'bf16', round: { format: parseFormat('bf16'), overflow: 'inf', viaFp16: false }, tolerance: { rel: 1.6e-2, absOfMax: 1.6e-2 } },
  // The fp16 pre-rounding and a saturating format without inf: the quantise kernel's other paths.
  { name: 'e5m2-paper via fp16', round: { format: parseFormat('e5m2-paper'), overflow: 'saturate', viaFp16: true }, tolerance: { rel: 0.26, absOfMax: 0.26 } },
];

/** At most 1% (and at least 2) elements with different bits, each within the tolerance. */
function expectNearlySame(gpu: HostArray, cpu: HostArray, tolerance: Tolerance, label: string): void {
  expectClose(gpu, cpu, tolerance, label);
  const g = new Int32Array(gpu.buffer, gpu.byteOffset, gpu.length);
  const c = new Int32Array(cpu.buffer, cpu.byteOffset, cpu.length);
  let differ = 0;
  for (let i = 0; i < c.length; i++) if (g[i] !== c[i] && !(Number.isNaN(gpu[i]!) && Number.isNaN(cpu[i]!))) differ++;
  expect(differ, `${label}: elements with different bits`).toBeLessThanOrEqual(Math.max(2, Math.floor(0.01 * c.length)));
}

interface Case {
  readonly batch: number;
  readonly length: number;
  readonly width: number;
  readonly step: number;
}

function inputs(c: Case, seed: number): Record<string, Float32Array> {
  const n = c.batch * c.width;
  const projected = testValues(c.batch * c.length * 2 * c.width, seed, 2);
  // Zeros, saturating and (for the formats) overflowing pre-activations in slot `step`.
  const slot = c.step * 2 * c.width;
  projected.set([0, -0, 30, -30, 7e4, -7e4], slot);
  projected.set([0, 25, -25], slot + c.width);
  const gradOut = testValues(n, seed + 3);
  gradOut.set([0, -0, 1e5, -1e-30]);
  return {
    projected,
    recurrent: testValues(2 * n, seed + 1),
    state: testValues(n, seed + 2),
    gradOut,
    out: new Float32Array(n),
    pre: new Float32Array(2 * n),
    gradProjected: testValues(projected.length, seed + 4),
    gradRecurrent: new Float32Array(2 * n),
    gradState: testValues(n, seed + 5),
  };
}

function call(c: Case, round: NearestRounding | null, accumulate: boolean) {
  return (b: Backend, s: Record<string, Storage>) => {
    const dims = { batch: c.batch, width: c.width, length: c.length, step: c.step, round };
    b.highwayStep({ projected: s.projected!, recurrent: s.recurrent!, state: s.state!, out: s.out!, pre: s.pre!, ...dims });
    b.highwayStepGrad({
      pre: s.pre!,
      state: s.state!,
      gradOut: s.gradOut!,
      gradProjected: s.gradProjected!,
      accumulateProjected: accumulate,
      gradRecurrent: s.gradRecurrent!,
      gradState: s.gradState!,
      accumulateState: accumulate,
      ...dims,
    });
  };
}

const OUTPUTS = ['out', 'pre', 'gradProjected', 'gradRecurrent', 'gradState'] as const;

describe.skipIf(!cuda)(`CUDA fused highway step ${noCudaReason}`, () => {
  const cases: Case[] = [
    { batch: 5, length: 7, width: 37, step: 3 },
    { batch: 64, length: 4, width: 300, step: 0 },
    { batch: 8, length: 256, width: 128, step: 255 },
  ];
  for (const mode of MODES) {
    for (const accumulate of [false, true]) {
      it(`forward and backward match the CPU twin (${mode.name}, gradients ${accumulate ? 'accumulated' : 'written'})`, () => {
        for (const c of cases) {
          const buffers = inputs(c, 101 + c.width);
          const { cpu, gpu } = runBoth(buffers, call(c, mode.round, accumulate), OUTPUTS);
          const label = `${mode.name} B${c.batch} L${c.length} H${c.width} t${c.step}`;
          for (const name of OUTPUTS) expectNearlySame(gpu[name]!, cpu[name]!, mode.tolerance, `${label} ${name}`);
          // Every slot but `step` of the projected gradient is left exactly as it was.
          const before = buffers.gradProjected!;
          const after = gpu.gradProjected!;
          const row = 2 * c.width;
          for (let b = 0; b < c.batch; b++) {
            for (let t = 0; t < c.length; t++) {
              if (t === c.step) continue;
              const at = (b * c.length + t) * row;
              expectSameBits(after.subarray(at, at + row), before.subarray(at, at + row), `${label} untouched slot (${b}, ${t})`);
            }
          }
        }
      });
    }
  }

  it('optional gradients may be left out', () => {
    const c: Case = { batch: 3, length: 2, width: 9, step: 1 };
    const buffers = inputs(c, 7);
    const partial = (b: Backend, s: Record<string, Storage>) => {
      const dims = { batch: c.batch, width: c.width, length: c.length, step: c.step, round: null };
      b.highwayStep({ projected: s.projected!, recurrent: s.recurrent!, state: s.state!, out: s.out!, pre: s.pre!, ...dims });
      b.highwayStepGrad({ pre: s.pre!, state: s.state!, gradOut: s.gradOut!, gradProjected: null, accumulateProjected: false, gradRecurrent: s.gradRecurrent!, gradState: null, accumulateState: false, ...dims });
    };
    const { cpu, gpu } = runBoth(buffers, partial, ['gradRecurrent', 'gradProjected', 'gradState']);
    expectNearlySame(gpu.gradRecurrent!, cpu.gradRecurrent!, MODES[0]!.tolerance, 'gradRecurrent');
    expectSameBits(gpu.gradProjected!, buffers.gradProjected!, 'gradProjected untouched');
    expectSameBits(gpu.gradState!, buffers.gradState!, 'gradState untouched');
  });

  it('a captured graph replays the step exactly', () => {
    const gpu = cuda!;
    const c: Case = { batch: 8, length: 16, width: 128, step: 5 };
    const buffers = inputs(c, 9);
    const fp16 = MODES[1]!.round;
    const eager = runOn(gpu, buffers, (s) => call(c, fp16, false)(gpu, s), OUTPUTS);
    const replayed = runOn(
      gpu,
      buffers,
      (s) => {
        const graph = gpu.captureGraph(() => call(c, fp16, false)(gpu, s));
        graph.replay();
        graph.dispose();
      },
      OUTPUTS,
    );
    for (const name of OUTPUTS) expectSameBits(replayed[name]!, eager[name]!, `graph ${name}`);
  });
});
