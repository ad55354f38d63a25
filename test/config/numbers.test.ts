import { describe, expect, it } from 'vitest';
import { coerceNumberLike, parseNumberString } from '../../src/config/numbers.ts';

describe('numbers written as strings', () => {
  it('reads powers of two in both notations', () => {
    expect(parseNumberString('2^-10')).toBe(2 ** -10);
    expect(parseNumberString('2**-16')).toBe(1.52587890625e-5);
    expect(parseNumberString(' 2 ^ 19 ')).toBe(524288);
    expect(parseNumberString('-2^3')).toBe(-8);
  });

  it('reads plain and exponent notation', () => {
    expect(parseNumberString('0.001')).toBe(0.001);
    expect(parseNumberString('1e-7')).toBe(1e-7);
    expect(parseNumberString('.5')).toBe(0.5);
  });

  it('rejects anything else', () => {
    for (const text of ['abc', '2^', '^3', '2^x', '', '1e', '0x10', '2^-10x']) expect(parseNumberString(text)).toBeUndefined();
  });

  it('leaves non-numeric values alone', () => {
    expect(coerceNumberLike('mean')).toBe('mean');
    expect(coerceNumberLike(3)).toBe(3);
    expect(coerceNumberLike(null)).toBeNull();
    expect(coerceNumberLike('2^-1')).toBe(0.5);
  });
});
