import { decodeCode } from '../../src/formats/codes.ts';
import { formatLimits, type FormatEncoding } from '../../src/formats/format.ts';

/**
 * A slow reference for quantise, built differently: it lists every non-negative value of the
 * format from its codes and picks neighbours by binary search, so a bug in the bit-pattern
 * rounding cannot hide in a shared helper.
 */
export interface Oracle {
  /** The two grid neighbours lo ≤ |x| ≤ hi (hi may be the overflow value just above max). */
  neighbours(magnitude: number): { lo: number; hi: number; loCode: number; hiCode: number };
  nearestEven(x: number, overflow: 'saturate' | 'inf'): number;
  readonly maxAbs: number;
}

export function buildOracle(format: FormatEncoding): Oracle {
  const codes = 2 ** (format.exponentBits + format.mantissaBits);
  const values: number[] = [];
  for (let code = 0; code < codes; code++) {
    const v = decodeCode(code, format);
    if (Number.isFinite(v)) values.push(v);
  }
  // Codes of finite non-negative values are increasing, so values is sorted and index = code.
  const { maxAbs } = formatLimits(format);
  const topCode = values.length - 1;
  // The value the unbounded grid would put next, which decides where overflow starts.
  const beyond = format.mantissaBits === 0 ? 2 * maxAbs : 2 * maxAbs - values[topCode - 1]!;
  values.push(beyond);
  const overflowValue = (sign: number): number =>
    format.special === 'ieee' ? sign * Infinity : format.special === 'fn' ? NaN : sign * maxAbs;

  function neighbours(magnitude: number): { lo: number; hi: number; loCode: number; hiCode: number } {
    let low = 0;
    let high = values.length - 1;
    if (magnitude >= values[high]!) return { lo: values[high]!, hi: values[high]!, loCode: high, hiCode: high };
    while (high - low > 1) {
      const mid = (low + high) >> 1;
      if (values[mid]! <= magnitude) low = mid;
      else high = mid;
    }
    if (values[low] === magnitude) high = low;
    return { lo: values[low]!, hi: values[high]!, loCode: low, hiCode: high };
  }

  function nearestEven(x: number, overflow: 'saturate' | 'inf'): number {
    if (Number.isNaN(x)) return NaN;
    const sign = x < 0 || Object.is(x, -0) ? -1 : 1;
    const magnitude = Math.abs(x);
    if (magnitude === Infinity) return overflow === 'saturate' ? sign * maxAbs : overflowValue(sign);
    if (magnitude > beyond) return overflow === 'saturate' ? sign * maxAbs : overflowValue(sign);
    const { lo, hi, loCode, hiCode } = neighbours(magnitude);
    // 2|x| against lo + hi compares the distances exactly (both sums are exact in float64).
    const twice = 2 * magnitude;
    const pick = twice < lo + hi ? loCode : twice > lo + hi ? hiCode : loCode % 2 === 0 ? loCode : hiCode;
    if (pick > topCode) return overflow === 'saturate' ? sign * maxAbs : overflowValue(sign);
    return sign * values[pick]!;
  }

  return { neighbours, nearestEven, maxAbs };
}
