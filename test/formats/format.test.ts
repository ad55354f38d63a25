import { describe, expect, it } from 'vitest';
import { ReproError } from '../../src/errors.ts';
import { defineFormat } from '../../src/formats/format.ts';
import { NAMED_FORMATS, parseFormat } from '../../src/formats/registry.ts';
import { formatTable, renderFormatTable } from '../../src/formats/table.ts';

describe('derived limits', () => {
  it.each([
    // name, bits, max, min normal, min subnormal, epsilon
    ['fp32', 32, 3.4028234663852886e38, 2 ** -126, 2 ** -149, 2 ** -23],
    ['fp16', 16, 65504, 2 ** -14, 2 ** -24, 2 ** -10],
    ['bf16', 16, 3.3895313892515355e38, 2 ** -126, 2 ** -133, 2 ** -7],
    ['e4m3', 8, 448, 2 ** -6, 2 ** -9, 2 ** -3],
    ['e5m2', 8, 57344, 2 ** -14, 2 ** -16, 2 ** -2],
    // §6.1 table of the paper family
    ['e4m3-paper', 8, 240, 2 ** -7, 2 ** -10, 2 ** -3],
    ['e5m2-paper', 8, 57344, 2 ** -15, 2 ** -17, 2 ** -2],
    ['e5m10', 16, 65504, 2 ** -15, 2 ** -25, 2 ** -10],
    ['e2m1', 4, 3, 0.5, 0.25, 0.5],
    ['e3m0', 4, 8, 2 ** -3, 2 ** -3, 1],
  ])('%s', (name, bits, maxAbs, minNormal, minSubnormal, epsilon) => {
    const f = parseFormat(name);
    expect([f.bits, f.maxAbs, f.minNormal, f.minSubnormal, f.epsilon]).toEqual([bits, maxAbs, minNormal, minSubnormal, epsilon]);
  });

  it('max values are float32 numbers', () => {
    for (const f of NAMED_FORMATS) expect(Math.fround(f.maxAbs)).toBe(f.maxAbs);
  });
});

describe('parseFormat', () => {
  it('finds named formats case-insensitively', () => {
    expect(parseFormat('E4M3').special).toBe('fn');
    expect(parseFormat('BF16').name).toBe('bf16');
  });

  it('reads custom paper-family names with an optional bias', () => {
    const custom = parseFormat('e3m2-b3');
    expect([custom.exponentBits, custom.mantissaBits, custom.bias, custom.special]).toEqual([3, 2, 3, 'none']);
    expect(parseFormat('e4m3-b8').maxAbs).toBe(parseFormat('e4m3-paper').maxAbs);
    expect(parseFormat('e4m3-b7').maxAbs).toBe(480);
  });

  it('names the bad value and lists the valid names', () => {
    expect(() => parseFormat('fp8')).toThrow(ReproError);
    expect(() => parseFormat('fp8')).toThrow(/"fp8".*fp32, fp16, bf16, e4m3, e5m2, e4m3-paper, e5m2-paper.*eXmY/);
  });

  it('rejects formats that do not fit in float32', () => {
    expect(() => parseFormat('e9m3')).toThrow(/e9m3: exponent bits must be 1..8/);
    expect(() => parseFormat('e4m24')).toThrow(/mantissa bits/);
    expect(() => parseFormat('e8m23')).toThrow(/smallest subnormal/);
    expect(() => parseFormat('e8m3-b120')).toThrow(/does not fit in float32/);
    expect(() => defineFormat('x', { exponentBits: 4, mantissaBits: 0, bias: 7, special: 'fn' })).toThrow(ReproError);
  });
});

describe('formatTable', () => {
  it('has one row per named format with its limits', () => {
    const rows = formatTable();
    expect(rows.map((r) => r.name)).toEqual(['fp32', 'fp16', 'bf16', 'e4m3', 'e5m2', 'e4m3-paper', 'e5m2-paper']);
    expect(rows.find((r) => r.name === 'e4m3-paper')).toMatchObject({ bits: 8, exponentBits: 4, mantissaBits: 3, bias: 8, maxAbs: 240 });
  });

  it('renders aligned text', () => {
    const lines = renderFormatTable(formatTable()).split('\n');
    expect(lines[0]).toMatch(/^format\s+bits\s+E\s+M\s+bias\s+specials\s+max\s+min normal\s+min subnormal\s+epsilon$/);
    expect(lines).toHaveLength(8);
    const e4m3 = lines.find((l) => l.startsWith('e4m3 '))!;
    expect(e4m3.split(/\s+/)).toEqual(['e4m3', '8', '4', '3', '7', 'nan', 'only', '448', '2^-6', '2^-9', '2^-3']);
    // Right-aligned numeric columns end at the same place on every line.
    const maxEnd = lines[0]!.indexOf('max') + 'max'.length;
    for (const line of lines.slice(1)) expect(line[maxEnd - 1]).toMatch(/\d/);
  });
});
