import { describe, expect, it } from 'vitest';
import { parseFormat } from '../../src/formats/registry.ts';
import { formatFraction, formatValue } from '../../src/inspect/format-number.ts';
import { plotRows } from '../../src/inspect/plot.ts';
import { tensorStats, type TensorReport } from '../../src/inspect/stats.ts';

const FORMATS = ['fp16', 'e4m3-paper', 'e5m2-paper', 'e4m3'].map(parseFormat);

describe('tensor statistics', () => {
  it('std, mean |x|, max |x| and zeros in float64', () => {
    const s = tensorStats(Float32Array.from([-2, 0, 2, 4]), FORMATS);
    expect(s.std).toBeCloseTo(Math.sqrt(((-3) ** 2 + 1 + 1 + 9) / 4), 12);
    expect(s.meanAbs).toBe(2);
    expect(s.maxAbs).toBe(4);
    expect(s.zeros).toBe(0.25);
  });

  it('underflow: nonzero values that round to zero (≤ half the smallest subnormal)', () => {
    // fp16 smallest subnormal 2^-24; paper E4M3 2^-10; paper E5M2 2^-17
    const s = tensorStats(Float32Array.from([2 ** -25, 1.01 * 2 ** -25, 2 ** -12, -(2 ** -11), 0]), FORMATS);
    expect(s.formats.fp16.underflow).toBeCloseTo(1 / 5, 12);
    expect(s.formats['e4m3-paper'].underflow).toBeCloseTo(4 / 5, 12);
    expect(s.formats['e5m2-paper'].underflow).toBeCloseTo(2 / 5, 12);
  });

  it('overflow: beyond the rounding tie above the largest value (the tie itself overflows only in IEEE formats)', () => {
    const s = tensorStats(Float32Array.from([65519, 65520, 464, 465, 248, 249, Infinity, NaN]), FORMATS);
    expect(s.formats.fp16.overflow).toBeCloseTo(3 / 8, 12); // 65520, inf and NaN
    expect(s.formats.e4m3.overflow).toBeCloseTo(5 / 8, 12); // OCP E4M3: 464 rounds to 448
    expect(s.formats['e4m3-paper'].overflow).toBeCloseTo(7 / 8, 12); // paper E4M3: max 240, tie 248
    expect(s.maxAbs).toBe(Infinity);
  });
});

describe('formatting', () => {
  it('values with three significant digits, fractions as percentages', () => {
    expect(formatValue(0.123456)).toBe('0.123');
    expect(formatValue(1.5e-7)).toBe('1.50e-7');
    expect(formatValue(0)).toBe('0');
    expect(formatFraction(0)).toBe('0');
    expect(formatFraction(0.000123)).toBe('0.012%');
    expect(formatFraction(1)).toBe('100%');
  });
});

describe('plot rows', () => {
  const report = (name: string, role: TensorReport['role'], std: number): TensorReport => ({
    name,
    role,
    shape: [1],
    std,
    meanAbs: std,
    maxAbs: std,
    zeros: 0,
    formats: {},
  });

  it('share one row per tensor repeated across layers, forward and backward apart', () => {
    const rows = plotRows([
      report('embedding', 'activation', 1),
      report('layers.0.ffn.up', 'activation', 0.5),
      report('layers.0.ffn.up', 'gradient', 2 ** -10),
      report('layers.1.ffn.up', 'activation', 2),
      report('layers.1.ffn.up', 'gradient', 2 ** -12),
      report('layers.0.ffn.up.bias', 'weight', 0),
      report('layers.0.ffn.up.bias', 'weight-gradient', 0.25),
    ]);
    expect(rows.map((r) => r.label)).toEqual(['embedding', 'layers.*.ffn.up', 'layers.*.ffn.up.bias']);
    expect(rows[1]).toMatchObject({ section: 'activations', forward: [-1, 1], backward: [-10, -12], layers: 2, constant: false });
    expect(rows[2]).toMatchObject({ section: 'weights', forward: [], backward: [-2], constant: true });
  });
});
