import { describe, expect, it } from 'vitest';
import { ReproError } from '../../src/errors.ts';
import { formatValueText, parseValueText, valuesToJson } from '../../src/formats/index.ts';

describe('value text', () => {
  it('parses numbers and the non-finite spellings', () => {
    expect(['1', '-1.5', '.5', '+2.', '1e5', '-1E-3', 'NaN', 'inf', '+inf', '-Infinity'].map(parseValueText)).toEqual([
      1, -1.5, 0.5, 2, 1e5, -1e-3, NaN, Infinity, Infinity, -Infinity,
    ]);
  });

  it('rejects anything else, naming it', () => {
    for (const bad of ['', '1e', '0x10', '--fmt', '1,5', 'abc']) {
      expect(() => parseValueText(bad)).toThrow(ReproError);
    }
    expect(() => parseValueText('--fmt')).toThrow('invalid value "--fmt"');
  });

  it('prints exact values, -0, nan and ±inf', () => {
    expect([0.1015625, -0, 0, NaN, Infinity, -Infinity, Math.fround(0.1)].map(formatValueText)).toEqual([
      '0.1015625', '-0', '0', 'nan', 'inf', '-inf', '0.10000000149011612',
    ]);
    expect(valuesToJson([1.5, NaN, -Infinity, -0])).toBe('[1.5, "nan", "-inf", -0]');
  });
});
