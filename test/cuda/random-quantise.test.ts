/**
 * Philox kernels against the CPU twin: uniform numbers and every quantisation result must be
 * identical bit for bit (integer arithmetic and exact float64 steps); normals go through the
 * device's float64 log/sqrt/cos, whose last-ulp differences from V8's can move a float32 result
 * by one ulp, so they are checked to 2^-22 relative and most must match exactly.
 */
import { describe, expect, it } from 'vitest';
import type { QuantiseOptions } from '../../src/backend/backend.ts';
import { NAMED_FORMATS, parseFormat } from '../../src/formats/registry.ts';
import { cuda, expectClose, expectSameBits, noCudaReason, runBoth, testValues } from './helpers.ts';

/** Values across every regime: normal, subnormal of the formats and of float32, huge, specials. */
function quantiseInputs(n: number): Float32Array {
  const x = testValues(n, 121);
  const bits = new Int32Array(x.buffer);
  for (let i = 0; i < n; i++) {
    const r = i % 8;
    if (r === 1) x[i] = x[i]! * 2 ** ((i % 50) - 30);
    else if (r === 2) bits[i] = (i * 2654435761) & 0x80ffffff;
    else if (r === 3) x[i] = x[i]! * 3e4;
    else if (r === 4) x[i] = [Infinity, -Infinity, NaN, 0, -0, 240, 448, 57344, 65504, 1e-40][i % 10]!;
  }
  return x;
}

describe.skipIf(!cuda)(`CUDA Philox kernels ${noCudaReason}`, () => {
  it('uniform numbers equal the CPU stream bit for bit, with and without an epoch and a range', () => {
    const n = 10001;
    const { cpu, gpu } = runBoth({ u1: new Float32Array(n), u2: new Float32Array(n), epoch: new Int32Array([5]) }, (b, s) => {
      b.random(s.u1!, n, 'uniform', 2 ** 40 + 3, 77, null, 0, 1);
      b.random(s.u2!, n, 'uniform', 12345, 4294967295, s.epoch!, -2, 3.5);
    }, ['u1', 'u2']);
    expectSameBits(gpu.u1!, cpu.u1!, 'uniform');
    expectSameBits(gpu.u2!, cpu.u2!, 'uniform in [-2, 3.5) at epoch 5');
  });

  it('normal numbers match the CPU stream (odd length, epoch)', () => {
    const n = 9999;
    const { cpu, gpu } = runBoth({ z: new Float32Array(n), epoch: new Int32Array([3]) }, (b, s) => b.random(s.z!, n, 'normal', 99, 5, s.epoch!, 0.25, 2), ['z']);
    expectClose(gpu.z!, cpu.z!, { rel: 2 ** -22, abs: 1e-7 }, 'normal');
    let exact = 0;
    for (let i = 0; i < n; i++) if (gpu.z![i] === cpu.z![i]) exact++;
    expect(exact / n).toBeGreaterThan(0.99);
  });

  it('the epoch counter increments on the device', () => {
    const { cpu, gpu } = runBoth({ e: new Int32Array([41]) }, (b, s) => {
      b.increment(s.e!);
      b.increment(s.e!);
    }, ['e']);
    expect(gpu.e![0]).toBe(43);
    expect(cpu.e![0]).toBe(43);
  });

  const formats = [...NAMED_FORMATS.filter((f) => f.name !== 'fp32'), parseFormat('e2m1'), parseFormat('e3m0'), parseFormat('e5m10-b15')];
  for (const format of formats) {
    it(`quantise to ${format.name} is bit-exact for every rounding, overflow and fp16 pre-rounding`, () => {
      const n = 4099;
      const x = quantiseInputs(n);
      const variants: QuantiseOptions[] = [];
      for (const rounding of ['nearest', 'stochastic'] as const) {
        for (const overflow of ['saturate', 'inf'] as const) {
          for (const viaFp16 of [false, true]) variants.push({ rounding, overflow, viaFp16, seed: 2 ** 33 + 17, stream: 1234 });
        }
      }
      const buffers: Record<string, Float32Array | Int32Array> = { x, epoch: new Int32Array([9]) };
      variants.forEach((_, i) => (buffers[`q${i}`] = new Float32Array(n)));
      const outputs = variants.map((_, i) => `q${i}`);
      const { cpu, gpu } = runBoth(buffers, (b, s) => {
        variants.forEach((options, i) => b.quantise(s.x!, s[`q${i}`]!, n, format, options, i % 2 === 0 ? s.epoch! : null));
      }, outputs);
      variants.forEach((v, i) => expectSameBits(gpu[`q${i}`]!, cpu[`q${i}`]!, `${format.name} ${v.rounding} ${v.overflow}${v.viaFp16 ? ' via fp16' : ''}`));
    });
  }

  it('quantiseMany rounds each tensor in place exactly as quantise on its own stream', () => {
    // Sizes across quantise_multi's 2048-element chunks, odd lengths, a one-element tensor.
    const sizes = [4099, 1, 2048, 6147, 3, 2];
    const format = parseFormat('fp16');
    for (const rounding of ['nearest', 'stochastic'] as const) {
      for (const viaFp16 of [false, true]) {
        const target = viaFp16 ? parseFormat('e4m3-paper') : format;
        const buffers: Record<string, Float32Array | Int32Array> = { epoch: new Int32Array([4]) };
        sizes.forEach((n, i) => {
          buffers[`t${i}`] = quantiseInputs(n).map((v) => v * (i + 1));
          buffers[`r${i}`] = Float32Array.from(buffers[`t${i}`]!);
        });
        const tensors = sizes.map((_, i) => `t${i}`);
        const references = sizes.map((_, i) => `r${i}`);
        const options = { rounding, overflow: 'inf', viaFp16, seed: 2 ** 35 + 1 } as const;
        const { cpu, gpu } = runBoth(buffers, (b, s) => {
          b.quantiseMany(sizes.map((n, i) => ({ storage: s[`t${i}`]!, n, stream: 900 + 7 * i })), target, options, s.epoch!);
          sizes.forEach((n, i) => b.quantise(s[`r${i}`]!, s[`r${i}`]!, n, target, { ...options, stream: 900 + 7 * i }, s.epoch!));
        }, [...tensors, ...references]);
        sizes.forEach((_, i) => {
          const label = `${rounding}${viaFp16 ? ' via fp16' : ''} tensor ${i}`;
          expectSameBits(gpu[`t${i}`]!, cpu[`t${i}`]!, `${label}: GPU against CPU`);
          expectSameBits(gpu[`t${i}`]!, gpu[`r${i}`]!, `${label}: quantiseMany against quantise`);
        });
      }
    }
  });

  it('stochastic rounding draws fresh bits when the epoch advances', () => {
    const n = 2048;
    const x = testValues(n, 131);
    const options: QuantiseOptions = { rounding: 'stochastic', overflow: 'saturate', viaFp16: false, seed: 7, stream: 1 };
    const format = parseFormat('e4m3-paper');
    const { gpu } = runBoth({ x, a: new Float32Array(n), b: new Float32Array(n), epoch: new Int32Array([0]) }, (be, s) => {
      be.quantise(s.x!, s.a!, n, format, options, s.epoch!);
      be.increment(s.epoch!);
      be.quantise(s.x!, s.b!, n, format, options, s.epoch!);
    }, ['a', 'b']);
    let differ = 0;
    for (let i = 0; i < n; i++) if (gpu.a![i] !== gpu.b![i]) differ++;
    expect(differ).toBeGreaterThan(n / 4);
  });
});
