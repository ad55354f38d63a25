import { formatLimits, type FormatEncoding } from './format.ts';

/**
 * Raw bit codes of a format (sign | exponent field | mantissa), e.g. to store or compare FP8
 * tensors with what PyTorch/hardware produce. Values travel as plain numbers.
 */

function fieldSizes(format: FormatEncoding): { topField: number; mantissaCodes: number; signBit: number } {
  return {
    topField: 2 ** format.exponentBits - 1,
    mantissaCodes: 2 ** format.mantissaBits,
    signBit: 2 ** (format.exponentBits + format.mantissaBits),
  };
}

/** The value of a code (NaN for any NaN code). */
export function decodeCode(code: number, format: FormatEncoding): number {
  const { topField, mantissaCodes, signBit } = fieldSizes(format);
  if (!Number.isInteger(code) || code < 0 || code >= 2 * signBit) {
    throw new RangeError(`code ${code} is outside a ${1 + format.exponentBits + format.mantissaBits}-bit format`);
  }
  const sign = code >= signBit ? -1 : 1;
  const magnitude = code % signBit;
  const field = Math.floor(magnitude / mantissaCodes);
  const mantissa = magnitude % mantissaCodes;
  if (format.special === 'ieee' && field === topField) return mantissa === 0 ? sign * Infinity : NaN;
  if (format.special === 'fn' && field === topField && mantissa === mantissaCodes - 1) return NaN;
  if (field === 0) return sign * mantissa * 2 ** (1 - format.bias - format.mantissaBits);
  return sign * (1 + mantissa / mantissaCodes) * 2 ** (field - format.bias);
}

/**
 * The code of a value that is on the format's grid (e.g. a `quantise` result). NaN gets the
 * all-ones NaN code; throws RangeError for values the format cannot hold.
 */
export function encodeValue(value: number, format: FormatEncoding): number {
  const { topField, mantissaCodes, signBit } = fieldSizes(format);
  const signCode = value < 0 || Object.is(value, -0) ? signBit : 0;
  const magnitude = Math.abs(value);
  if (Number.isNaN(value) || magnitude === Infinity) {
    if (format.special === 'none' || (format.special === 'fn' && !Number.isNaN(value))) {
      throw new RangeError(`${value} has no code in a format without ${Number.isNaN(value) ? 'NaN' : 'infinities'}`);
    }
    if (Number.isNaN(value)) return topField * mantissaCodes + mantissaCodes - 1;
    return signCode + topField * mantissaCodes;
  }
  const limits = formatLimits(format);
  if (magnitude > limits.maxAbs) throw new RangeError(`${value} is beyond the format's largest value ${limits.maxAbs}`);
  let field: number;
  let mantissa: number;
  if (magnitude < limits.minNormal) {
    field = 0;
    mantissa = magnitude / limits.minSubnormal;
  } else {
    let exponent = Math.floor(Math.log2(magnitude));
    if (2 ** exponent > magnitude) exponent--;
    if (2 ** (exponent + 1) <= magnitude) exponent++;
    field = exponent + format.bias;
    mantissa = (magnitude / 2 ** exponent - 1) * mantissaCodes;
  }
  if (!Number.isInteger(mantissa)) throw new RangeError(`${value} is not on the grid of the format`);
  return signCode + field * mantissaCodes + mantissa;
}
