import { ReproError } from '../errors.ts';

/**
 * How a format spends its top codes:
 * - 'ieee': the top exponent field is reserved for ±inf and NaN (fp32, fp16, bf16, OCP e5m2);
 * - 'fn':   OCP E4M3FN: no infinities, only S.1111.111 is NaN, so the top binade loses one value;
 * - 'none': the paper's (Graphcore) family: every code is a finite number, no inf or NaN.
 */
export type SpecialValues = 'ieee' | 'fn' | 'none';

/** The fields that fix a format's value set (what a quantise kernel needs). */
export interface FormatEncoding {
  readonly exponentBits: number;
  readonly mantissaBits: number;
  readonly bias: number;
  readonly special: SpecialValues;
}

export interface FloatFormat extends FormatEncoding {
  readonly name: string;
  /** 1 + exponentBits + mantissaBits. */
  readonly bits: number;
  readonly maxAbs: number;
  readonly minNormal: number;
  readonly minSubnormal: number;
  /** 2^-mantissaBits: the gap between 1 and the next value. */
  readonly epsilon: number;
}

export interface FormatLimits {
  readonly maxAbs: number;
  readonly minNormal: number;
  readonly minSubnormal: number;
  /** Unbiased exponent of the smallest normal binade: 1 − bias. */
  readonly minExponent: number;
  /** Unbiased exponent of the largest finite binade. */
  readonly maxExponent: number;
}

/**
 * The limits of an encoding. Every format must sit inside float32 (values are simulated in
 * float32): at most 23 mantissa bits, smallest subnormal ≥ 2^-149, largest value < 2^128.
 * Throws ReproError naming the format otherwise.
 */
export function formatLimits(encoding: FormatEncoding, name = describeEncoding(encoding)): FormatLimits {
  const { exponentBits: e, mantissaBits: m, bias, special } = encoding;
  if (!Number.isInteger(e) || e < 1 || e > 8) throw new ReproError(`number format ${name}: exponent bits must be 1..8 (got ${e})`);
  if (!Number.isInteger(m) || m < 0 || m > 23) throw new ReproError(`number format ${name}: mantissa bits must be 0..23 (got ${m})`);
  if (!Number.isInteger(bias)) throw new ReproError(`number format ${name}: bias must be an integer (got ${bias})`);
  if (special === 'ieee' && e < 2) throw new ReproError(`number format ${name}: an IEEE-style format needs at least 2 exponent bits`);
  if (special === 'fn' && m < 1) throw new ReproError(`number format ${name}: an 'fn' format needs at least 1 mantissa bit`);
  const topField = special === 'ieee' ? 2 ** e - 2 : 2 ** e - 1;
  const maxExponent = topField - bias;
  const minExponent = 1 - bias;
  // 'fn' gives up the all-ones mantissa of the top binade to NaN.
  const topSignificand = special === 'fn' ? 2 - 2 ** (1 - m) : 2 - 2 ** -m;
  if (maxExponent > 127) throw new ReproError(`number format ${name}: largest value 2^${maxExponent}·${topSignificand} does not fit in float32`);
  if (minExponent - m < -149) throw new ReproError(`number format ${name}: smallest subnormal 2^${minExponent - m} is below float32's 2^-149`);
  return {
    maxAbs: 2 ** maxExponent * topSignificand,
    minNormal: 2 ** minExponent,
    minSubnormal: 2 ** (minExponent - m),
    minExponent,
    maxExponent,
  };
}

function describeEncoding(encoding: FormatEncoding): string {
  return `e${encoding.exponentBits}m${encoding.mantissaBits}-b${encoding.bias} (${encoding.special})`;
}

/** A validated format with its derived limits. */
export function defineFormat(name: string, encoding: FormatEncoding): FloatFormat {
  const limits = formatLimits(encoding, name);
  return {
    name,
    exponentBits: encoding.exponentBits,
    mantissaBits: encoding.mantissaBits,
    bias: encoding.bias,
    special: encoding.special,
    bits: 1 + encoding.exponentBits + encoding.mantissaBits,
    maxAbs: limits.maxAbs,
    minNormal: limits.minNormal,
    minSubnormal: limits.minSubnormal,
    epsilon: 2 ** -encoding.mantissaBits,
  };
}
