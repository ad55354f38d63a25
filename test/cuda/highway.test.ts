/**
 * The fused Recurrent Highway Network step, CUDA against the CPU twin.
 * Tolerances: both sides round at the same points with the same quantise_nearest (or
 * quantise_stochastic on the same Philox words), and evaluate tanh, σ and their derivatives in
 * float64 with the same formulas, so results are expected to be bit-identical except where the
 * device's float64 tanh/exp differ from V8's in the last bit and that reaches a float32 (or
 * format) rounding. That happens mostly in tanh' = 1 − t² for |pre| ≳ 8, where the cancellation
 * magnifies it, so at most 1% of the elements may differ, each by no more than a few float32 ulps
 * (fp32: rel 1e-5, plus 1e-6 of the largest value for the tiny saturated derivatives) or, where a
 * format rounding flips and carries on, one format ulp (fp16: rel 2e-3, bf16 and the fp8 grid:
 * rel 1.6e-2, plus the same fraction of the largest value). Untouched slots of the projected
 * gradient must keep their bits exactly.
 * Stochastic rounding decides alike wherever its input is alike, so the same scheme holds (a
 * last-bit tanh/exp difference can move a value across its random threshold: one format ulp,
 * about as rarely as across a nearest-rounding midpoint). pre involves no transcendental
 * function and must match exactly in every mode, as must every output when pre = 0, where tanh
 * and σ are exact.
 */
import { describe, expect, it } from 'vitest';
import type { Backend, HighwayRounding, QuantiseFormat, RoundingStreams, Storage } from '../../src/backend/backend.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import { cuda, expectClose, expectSameBits, noCudaReason, runBoth, runOn, testValues, type HostArray, type Tolerance } from './helpers.ts';

interface Mode {
  readonly name: string;
  /** null: no rounding (fp32). */
  readonly format: { readonly format: QuantiseFormat; readonly overflow: 'saturate' | 'inf'; readonly viaFp16: boolean } | null;
  readonly stochastic: boolean;
  readonly tolerance: Tolerance;
}

const FP16 = { format: parseFormat('fp16'), overflow: 'inf', viaFp16: false } as const;
const BF16 = { format: parseFormat('bf16'), overflow: 'inf', viaFp16: false } as const;
// The fp16 pre-rounding and a saturating format without inf: the quantise kernel's other paths.
const E5M2_VIA_FP16 = { format: parseFormat('e5m2-paper'), overflow: 'saturate', viaFp16: true } as const;

const MODES: readonly Mode[] = [
  { name: 'fp32', format: null, stochastic: false, tolerance: { rel: 1e-5, absOfMax: 1e-6 } },
  { name: 'fp16', format: FP16, stochastic: false, tolerance: { rel: 2e-3, absOfMax: 2e-3 } },
  { name: 'bf16', format: BF16, stochastic: false, tolerance: { rel: 1.6e-2, absOfMax: 1.6e-2 } },
  { name: 'e5m2-paper via fp16', format: E5M2_VIA_FP16, stochastic: false, tolerance: { rel: 0.26, absOfMax: 0.26 } },
  { name: 'fp16 stochastic', format: FP16, stochastic: true, tolerance: { rel: 2e-3, absOfMax: 2e-3 } },
  { name: 'bf16 stochastic', format: BF16, stochastic: true, tolerance: { rel: 1.6e-2, absOfMax: 1.6e-2 } },
  { name: 'e5m2-paper via fp16 stochastic', format: E5M2_VIA_FP16, stochastic: true, tolerance: { rel: 0.26, absOfMax: 0.26 } },
];

/** A seed above 2^32 exercises both Philox key words; the epoch comes from the `epoch` buffer. */
const SEED = 2 ** 40 + 12345;
const FIRST_STREAM = 1 << 20;

/** The forward call's rounding and the backward's streams, as highwayStep's op draws them. */
function roundingOf(mode: Mode, epoch: Storage): { round: HighwayRounding | null; gradStreams: RoundingStreams | null } {
  if (!mode.format) return { round: null, gradStreams: null };
  const streams = (first: number): RoundingStreams => ({ seed: SEED, streams: [0, 1, 2, 3, 4, 5].map((k) => first + k), epoch });
  return {
    round: { ...mode.format, stochastic: mode.stochastic ? streams(FIRST_STREAM) : null },
    gradStreams: mode.stochastic ? streams(FIRST_STREAM + 6) : null,
  };
}

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

function inputs(c: Case, seed: number): Record<string, HostArray> {
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
    epoch: new Int32Array([seed % 7 + 1]),
  };
}

function call(c: Case, mode: Mode, accumulate: boolean) {
  return (b: Backend, s: Record<string, Storage>) => {
    const { round, gradStreams } = roundingOf(mode, s.epoch!);
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
      gradStreams,
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
          const { cpu, gpu } = runBoth(buffers, call(c, mode, accumulate), OUTPUTS);
          const label = `${mode.name} B${c.batch} L${c.length} H${c.width} t${c.step}`;
          for (const name of OUTPUTS) expectNearlySame(gpu[name]!, cpu[name]!, mode.tolerance, `${label} ${name}`);
          expectSameBits(gpu.pre!, cpu.pre!, `${label} pre`);
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

  it('with pre = 0 (tanh and σ exact) every output matches bit for bit, stochastic rounding decisions included', () => {
    const c: Case = { batch: 16, length: 3, width: 96, step: 2 };
    for (const mode of MODES) {
      for (const accumulate of [false, true]) {
        const buffers = inputs(c, 31);
        const n = c.batch * c.width;
        const projected = buffers.projected as Float32Array;
        for (let b = 0; b < c.batch; b++) projected.fill(0, (b * c.length + c.step) * 2 * c.width, (b * c.length + c.step + 1) * 2 * c.width);
        buffers.recurrent = new Float32Array(2 * n);
        const { cpu, gpu } = runBoth(buffers, call(c, mode, accumulate), OUTPUTS);
        // A NaN made by arithmetic (inf − inf where a cast overflowed) has a platform-specific bit
        // pattern (x86: 0xffc00000, CUDA: 0x7fffffff): compare NaN as NaN, everything else by bits.
        const canonical = (a: Float32Array) => a.map((v) => (Number.isNaN(v) ? Number.NaN : v));
        for (const name of OUTPUTS) {
          expectSameBits(canonical(gpu[name] as Float32Array), canonical(cpu[name] as Float32Array), `${mode.name}${accumulate ? ' accumulated' : ''}, pre = 0: ${name}`);
        }
      }
    }
  });

  it('optional gradients may be left out', () => {
    const c: Case = { batch: 3, length: 2, width: 9, step: 1 };
    for (const mode of [MODES[0]!, MODES[4]!]) {
      const buffers = inputs(c, 7);
      const onlyRecurrent = (b: Backend, s: Record<string, Storage>) => {
        const { round, gradStreams } = roundingOf(mode, s.epoch!);
        const dims = { batch: c.batch, width: c.width, length: c.length, step: c.step, round };
        b.highwayStep({ projected: s.projected!, recurrent: s.recurrent!, state: s.state!, out: s.out!, pre: s.pre!, ...dims });
        b.highwayStepGrad({ pre: s.pre!, state: s.state!, gradOut: s.gradOut!, gradProjected: null, accumulateProjected: false, gradRecurrent: s.gradRecurrent!, gradState: null, accumulateState: false, ...dims, gradStreams });
      };
      const { cpu, gpu } = runBoth(buffers, onlyRecurrent, ['gradRecurrent', 'gradProjected', 'gradState']);
      expectNearlySame(gpu.gradRecurrent!, cpu.gradRecurrent!, mode.tolerance, `${mode.name} gradRecurrent`);
      expectSameBits(gpu.gradProjected!, buffers.gradProjected!, `${mode.name} gradProjected untouched`);
      expectSameBits(gpu.gradState!, buffers.gradState!, `${mode.name} gradState untouched`);
      // Only the state's gradient: no rounding at u, c or pre (the op then draws three gradient streams).
      const onlyState = (b: Backend, s: Record<string, Storage>) => {
        const { round, gradStreams } = roundingOf(mode, s.epoch!);
        const dims = { batch: c.batch, width: c.width, length: c.length, step: c.step, round };
        b.highwayStep({ projected: s.projected!, recurrent: s.recurrent!, state: s.state!, out: s.out!, pre: s.pre!, ...dims });
        b.highwayStepGrad({ pre: s.pre!, state: s.state!, gradOut: s.gradOut!, gradProjected: null, accumulateProjected: false, gradRecurrent: null, gradState: s.gradState!, accumulateState: false, ...dims, gradStreams });
      };
      const state = runBoth(buffers, onlyState, ['gradRecurrent', 'gradProjected', 'gradState']);
      expectNearlySame(state.gpu.gradState!, state.cpu.gradState!, mode.tolerance, `${mode.name} gradState alone`);
      expectSameBits(state.gpu.gradRecurrent!, buffers.gradRecurrent!, `${mode.name} gradRecurrent untouched`);
      expectSameBits(state.gpu.gradProjected!, buffers.gradProjected!, `${mode.name} gradProjected untouched`);
    }
  });

  it('a captured graph replays the step exactly, and stochastic rounding follows the device epoch', () => {
    const gpu = cuda!;
    const c: Case = { batch: 8, length: 16, width: 128, step: 5 };
    const buffers = inputs(c, 9);
    for (const mode of [MODES[1]!, MODES[4]!]) {
      const eager = runOn(gpu, buffers, (s) => call(c, mode, false)(gpu, s), OUTPUTS);
      const replayed = runOn(
        gpu,
        buffers,
        (s) => {
          const graph = gpu.captureGraph(() => call(c, mode, false)(gpu, s));
          graph.replay();
          graph.dispose();
        },
        OUTPUTS,
      );
      for (const name of OUTPUTS) expectSameBits(replayed[name]!, eager[name]!, `${mode.name} graph ${name}`);
    }
    // A replay after an epoch increment draws other numbers: pre (rounded stochastically) changes.
    const stochastic = MODES[4]!;
    const [first, second] = (() => {
      const results: HostArray[] = [];
      runOn(
        gpu,
        buffers,
        (s) => {
          const graph = gpu.captureGraph(() => call(c, stochastic, false)(gpu, s));
          graph.replay();
          results.push(gpu.read(s.pre!));
          gpu.increment(s.epoch!);
          graph.replay();
          results.push(gpu.read(s.pre!));
          graph.dispose();
        },
        [],
      );
      return results;
    })();
    const differ = first!.some((v, i) => !Object.is(v, second![i]));
    expect(differ, 'pre after an epoch increment').toBe(true);
  });
});
