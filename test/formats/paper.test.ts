import { describe, expect, it } from 'vitest';
import { quantise, type QuantiseOptions } from '../../src/formats/quantise.ts';
import { parseFormat } from '../../src/formats/registry.ts';

const NEAREST: QuantiseOptions = { rounding: 'nearest', overflow: 'saturate' };

function cast(name: string, values: readonly number[], options: QuantiseOptions = NEAREST): number[] {
  const out = new Float32Array(values.length);
  quantise(new Float32Array(values), out, parseFormat(name), options);
  return Array.from(out);
}

function linspace(from: number, to: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => from + ((to - from) * i) / (count - 1));
}

describe('paper family (unit-scaling-ops.md §6, §8.11–12; ties to even)', () => {
  it('E2M1 on linspace(-4, 4, 100) hits exactly its grid', () => {
    const seen = [...new Set(cast('e2m1', linspace(-4, 4, 100)).map((v) => (Object.is(v, -0) ? 0 : v)))].sort((a, b) => a - b);
    expect(seen).toEqual([-3, -2, -1.5, -1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1, 1.5, 2, 3]);
  });

  it('E3M0 on linspace(-10, 10, 1000) gives |values| {0, 1/8, …, 8}', () => {
    const magnitudes = [...new Set(cast('e3m0', linspace(-10, 10, 1000)).map(Math.abs))].sort((a, b) => a - b);
    expect(magnitudes).toEqual([0, 0.125, 0.25, 0.5, 1, 2, 4, 8]);
  });

  it('E2M1: -1.35 → -1.5; exact ties go to the even code (not toward zero as in the library)', () => {
    expect(cast('e2m1', [-1.35, 1.25, 1.75, -1.75, 2.5, 0.375, 0.125, -0.125])).toEqual([-1.5, 1, 2, -2, 2, 0.5, 0, -0]);
  });

  it('E4M3 paper: 1.0625 → 1, 232 → 224 (even), 1000 and inf saturate to 240, tiny ties to 0', () => {
    expect(cast('e4m3-paper', [1.0625, 1.1875, 232, 1000, Infinity, -Infinity, 2 ** -11, 3 * 2 ** -11])).toEqual([
      1, 1.25, 224, 240, 240, -240, 0, 2 ** -9,
    ]);
  });

  it('E4M3 paper grid limits: max 240, min normal 2^-7, min subnormal 2^-10', () => {
    expect(cast('e4m3-paper', [240, 247.99, 2 ** -7, 2 ** -10, 1.4 * 2 ** -10, 0.51 * 2 ** -10, 0.49 * 2 ** -10])).toEqual([
      240, 240, 2 ** -7, 2 ** -10, 2 ** -10, 2 ** -10, 0,
    ]);
    // 7 subnormal steps below 2^-7: 2^-10 · {1..7}
    expect(cast('e4m3-paper', [5.2 * 2 ** -10, 6.6 * 2 ** -10])).toEqual([5 * 2 ** -10, 7 * 2 ** -10]);
  });

  it('E5M2 paper: 1e5 → 57344; min subnormal 2^-17; no inf even under the inf policy', () => {
    expect(cast('e5m2-paper', [1e5, 2 ** -17, 2 ** -18, 1.01 * 2 ** -18])).toEqual([57344, 2 ** -17, 0, 2 ** -17]);
    expect(cast('e5m2-paper', [1e5, -Infinity], { rounding: 'nearest', overflow: 'inf' })).toEqual([57344, -57344]);
  });

  it('keeps -0, NaN, and the sign of values that round to zero', () => {
    const out = cast('e4m3-paper', [-0, NaN, -1e-30, 1e-30]);
    expect(Object.is(out[0], -0)).toBe(true);
    expect(out[1]).toBeNaN();
    expect(Object.is(out[2], -0)).toBe(true);
    expect(Object.is(out[3], 0)).toBe(true);
  });
});

describe('OCP and IEEE overflow policies', () => {
  it('saturate clamps finite overflow and infinities to ±max, keeps NaN', () => {
    expect(cast('e4m3', [500, -1e9, Infinity])).toEqual([448, -448, 448]);
    expect(cast('e5m2', [1e6, -Infinity])).toEqual([57344, -57344]);
    expect(cast('fp16', [65520, -1e30])).toEqual([65504, -65504]);
    expect(cast('e4m3', [NaN])[0]).toBeNaN();
  });

  it('inf gives the format’s own overflow: inf for IEEE-like, NaN for E4M3FN', () => {
    const inf: QuantiseOptions = { rounding: 'nearest', overflow: 'inf' };
    expect(cast('e5m2', [61440, 61439, -Infinity], inf)).toEqual([Infinity, 57344, -Infinity]);
    expect(cast('fp16', [65520, 65519], inf)).toEqual([Infinity, 65504]);
    const e4m3 = cast('e4m3', [464, 464.01, Infinity], inf);
    expect(e4m3[0]).toBe(448);
    expect(e4m3[1]).toBeNaN();
    expect(e4m3[2]).toBeNaN();
  });

  it('fp32 is the identity on finite values', () => {
    const values = [0.1, -3.4e38, 1e-45, 2 ** -126 * 1.5];
    expect(cast('fp32', values)).toEqual(values.map(Math.fround));
  });
});

describe('viaFp16 (the IPU double rounding)', () => {
  it('rounds to fp16 first, which can land on an FP8 tie', () => {
    // 1.0625 + 2^-12 is just above the E4M3 tie 1.0625, so it rounds up directly; fp16 first
    // rounds it onto the tie, which then goes to the even neighbour 1.
    const x = 1.0625 + 2 ** -12;
    expect(cast('e4m3-paper', [x])).toEqual([1.125]);
    expect(cast('e4m3-paper', [x], { ...NEAREST, viaFp16: true })).toEqual([1]);
  });

  it('saturates fp16 overflow before the target sees it', () => {
    expect(cast('bf16', [1e6], { ...NEAREST, viaFp16: true })).toEqual([65536]);
    expect(cast('bf16', [1e6], { rounding: 'nearest', overflow: 'inf', viaFp16: true })).toEqual([Infinity]);
  });
});

describe('in place and sub-arrays', () => {
  it('accepts src === dst and Float32Array views with an offset', () => {
    const buffer = new Float32Array([9, 1.3, -2.6, 9]);
    const view = buffer.subarray(1, 3);
    quantise(view, view, parseFormat('e2m1'), NEAREST);
    expect(Array.from(buffer)).toEqual([9, 1.5, -3, 9]);
  });

  it('rejects arrays of different lengths', () => {
    expect(() => quantise(new Float32Array(2), new Float32Array(3), parseFormat('e2m1'), NEAREST)).toThrow(/2 elements/);
  });
});
