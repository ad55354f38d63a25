import { fillRandomBits } from '../tensor/philox.ts';
import { formatLimits, type FormatEncoding } from './format.ts';

/**
 * Rounds float32 values onto a format's grid, in float32 (simulated low precision).
 *
 * Everything works on the float32 bit pattern a = |x| bits, which is monotonic in |x| and linear
 * inside a binade, so rounding to a grid of spacing 2^s·ulp32 is integer rounding of `a` to a
 * multiple of 2^s; a carry into the exponent field lands on the next power of two, which is on
 * the grid too. The shift s for a value with unbiased exponent e (e from the bit pattern, or
 * floor(log2 |x|) for float32 subnormals) is
 *     shift = max(e, emin) − M − max(e, −126) + 23          (emin = 1 − bias)
 * i.e. 23 − M in the format's normal range, more below it (the format's subnormal spacing is
 * fixed at 2^(emin − M)). shift ≤ 0: exact already. 1 ≤ shift ≤ 23: round the pattern. shift ≥ 24
 * (only for |x| < the format's smallest subnormal): the result is 0 or ±minSubnormal, decided on
 * the significand sig (mantissa with its implicit bit, or the raw pattern of a float32 subnormal).
 *
 * nearest = round to nearest, ties to the even format code (every family; spec §6.2's project
 * decision). Rounding happens on the unbounded grid first; a result above maxAbs then overflows.
 *   1 ≤ shift ≤ 23: a' = (a + 2^(shift−1) − 1 + parity) & ~(2^shift − 1), parity = the low bit of
 *                   the format code a truncates to: bit `shift` of a when shift < 23; at shift 23
 *                   (M = 0, or the format's lowest subnormal binade) (e + bias) & 1 if e ≥ emin,
 *                   else 1 (subnormal code 1), and 0 for a float32 subnormal;
 *   shift ≥ 24:     minSubnormal iff sig > 2^(shift−1) (a tie goes to the even code 0), else 0.
 *
 * stochastic (the CUDA twin must do exactly this): element j of the call uses random word
 * u = fillRandomBits word (offset + j) of (seed, stream, epoch), one word per element whether or
 * not it is needed. With shift as above:
 *   1 ≤ shift ≤ 23: a' = (a + (u & (2^shift − 1))) & ~(2^shift − 1)      (round up with
 *                   probability equal to the dropped fraction: unbiased);
 *   24 ≤ shift ≤ 32: result minSubnormal iff (sig mod 2^shift) + (u mod 2^shift) ≥ 2^shift, else 0;
 *   shift > 32:    result minSubnormal iff u < floor(sig / 2^(shift − 32)), else 0 (a bias below
 *                   2^-32·minSubnormal, for values under 2^-8 of the smallest subnormal).
 * The sign is put back afterwards, so rounding is symmetric about 0 and −0 stays −0.
 *
 * Overflow ('saturate'): results above maxAbs and ±inf become ±maxAbs. ('inf'): what the format
 * does — ±inf for 'ieee', NaN (bits sign | 0x7fc00000) for 'fn' (E4M3FN has no inf), ±maxAbs
 * for 'none' (no inf code). NaN inputs are passed through with their bits unchanged.
 *
 * viaFp16: round to fp16 (nearest-even, same overflow policy) first, then to the target — the
 * double rounding of the paper's IPU cast (FP32 → FP16 → FP8).
 */

export type Rounding = 'nearest' | 'stochastic';
export type OverflowPolicy = 'saturate' | 'inf';

export interface QuantiseOptions {
  readonly rounding: Rounding;
  readonly overflow: OverflowPolicy;
  /** Philox key for stochastic rounding (required for it). */
  readonly seed?: number;
  /** Philox stream (uint32), e.g. a tensor id; default 0. */
  readonly stream?: number;
  /** Stream element used by src[0]; src[j] uses offset + j. Default 0. */
  readonly offset?: number;
  /** Philox epoch (counter word 3), e.g. the training step; default 0. */
  readonly epoch?: number;
  readonly viaFp16?: boolean;
}

const FP16: FormatEncoding = { exponentBits: 5, mantissaBits: 10, bias: 15, special: 'ieee' };
const ABS_MASK = 0x7fffffff;
const INF_BITS = 0x7f800000;
const QUIET_NAN_BITS = 0x7fc00000;
const FLOAT32_MIN_NORMAL_BITS = 0x00800000;
const RANDOM_CHUNK = 4096;
/** Random words are drawn a chunk at a time into this reused buffer. */
const randomWords = new Int32Array(RANDOM_CHUNK);
const randomWordsU32 = new Uint32Array(randomWords.buffer);

const bitsScratchF32 = new Float32Array(1);
const bitsScratchI32 = new Int32Array(bitsScratchF32.buffer);
function float32Bits(value: number): number {
  bitsScratchF32[0] = value;
  return bitsScratchI32[0]!;
}

/** Per-format constants of the rounding loops, all as float32 bit patterns or shifts. */
interface Grid {
  readonly mantissaBits: number;
  readonly minExponent: number;
  readonly bias: number;
  /** 23 − M: the shift wherever the value is a normal number of both float32 and the format. */
  readonly normalShift: number;
  /** |x| bits at or above this use normalShift. */
  readonly normalFromBits: number;
  readonly maxBits: number;
  readonly minSubnormalBits: number;
  /** Magnitude bits written when a rounded finite value exceeds maxAbs. */
  readonly overflowBits: number;
  /** Magnitude bits written for an infinite input. */
  readonly infinityBits: number;
}

function gridOf(encoding: FormatEncoding, overflow: OverflowPolicy): Grid {
  const limits = formatLimits(encoding);
  const maxBits = float32Bits(limits.maxAbs);
  const formatOverflow = encoding.special === 'ieee' ? INF_BITS : encoding.special === 'fn' ? QUIET_NAN_BITS : maxBits;
  const overflowBits = overflow === 'saturate' ? maxBits : formatOverflow;
  return {
    mantissaBits: encoding.mantissaBits,
    minExponent: limits.minExponent,
    bias: encoding.bias,
    normalShift: 23 - encoding.mantissaBits,
    normalFromBits: Math.max(float32Bits(limits.minNormal), FLOAT32_MIN_NORMAL_BITS),
    maxBits,
    minSubnormalBits: float32Bits(limits.minSubnormal),
    overflowBits,
    infinityBits: overflowBits,
  };
}

/** The shift (see the header) for a finite nonzero magnitude below grid.normalFromBits. */
function shiftBelowNormal(a: number, grid: Grid): number {
  const field = a >>> 23;
  const exponent = field > 0 ? field - 127 : 31 - Math.clz32(a) - 149;
  return Math.max(exponent, grid.minExponent) - grid.mantissaBits - Math.max(exponent, -126) + 23;
}

/** sig: the significand as an integer, so that |x| = sig · ulp32(|x|). */
function significand(a: number): number {
  return a >= FLOAT32_MIN_NORMAL_BITS ? (a & 0x7fffff) | 0x800000 : a;
}

/**
 * Parity of the format code that `a` truncates to at this shift (the tie-breaking bit). Below
 * shift 23 it is the pattern's bit `shift`; at 23 that bit is the float32 exponent's, so use the
 * format's own code instead.
 */
function codeParity(a: number, shift: number, grid: Grid): number {
  if (shift < 23) return (a >>> shift) & 1;
  if (a < FLOAT32_MIN_NORMAL_BITS) return 0;
  const exponent = (a >>> 23) - 127;
  // M = 0 normal: the code's low bit is the biased exponent's; otherwise this is subnormal code 1.
  return exponent >= grid.minExponent ? (exponent + grid.bias) & 1 : 1;
}

function roundNearestBelowNormal(a: number, grid: Grid): number {
  if (a === 0) return 0;
  const shift = shiftBelowNormal(a, grid);
  if (shift <= 0) return a;
  if (shift <= 23) {
    const mask = (1 << shift) - 1;
    return (a + (mask >>> 1) + codeParity(a, shift, grid)) & ~mask;
  }
  // Candidates 0 (even) and minSubnormal (odd): only a magnitude strictly above half wins.
  return shift <= 25 && significand(a) > 2 ** (shift - 1) ? grid.minSubnormalBits : 0;
}

function roundStochasticBelowNormal(a: number, grid: Grid, word: number): number {
  if (a === 0) return 0;
  const shift = shiftBelowNormal(a, grid);
  if (shift <= 0) return a;
  if (shift <= 23) {
    const mask = (1 << shift) - 1;
    return (a + (word & mask)) & ~mask;
  }
  const sig = significand(a);
  if (shift <= 32) {
    const modulus = 2 ** shift;
    return sig + ((word >>> 0) % modulus) >= modulus ? grid.minSubnormalBits : 0;
  }
  return word >>> 0 < Math.floor(sig / 2 ** (shift - 32)) ? grid.minSubnormalBits : 0;
}

function quantiseNearest(bits: Int32Array, out: Int32Array, grid: Grid): void {
  const { normalShift, normalFromBits, maxBits, overflowBits, infinityBits } = grid;
  const mask = normalShift > 0 ? (1 << normalShift) - 1 : 0;
  const halfMinusOne = mask >>> 1;
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    const a = x & ABS_MASK;
    if (a >= INF_BITS) {
      out[i] = a === INF_BITS ? (x ^ a) | infinityBits : x;
      continue;
    }
    let r: number;
    if (a < normalFromBits) r = roundNearestBelowNormal(a, grid);
    else if (normalShift === 0) r = a;
    else if (normalShift < 23) r = (a + halfMinusOne + ((a >>> normalShift) & 1)) & ~mask;
    else r = roundNearestShift23(a, grid);
    out[i] = (x ^ a) | (r > maxBits ? overflowBits : r);
  }
}

/** M = 0 formats: the tie bit is the format's exponent parity (see codeParity). */
function roundNearestShift23(a: number, grid: Grid): number {
  return (a + 0x3fffff + codeParity(a, 23, grid)) & ~0x7fffff;
}

function quantiseStochastic(bits: Int32Array, out: Int32Array, grid: Grid, options: QuantiseOptions): void {
  const { normalShift, normalFromBits, maxBits, overflowBits, infinityBits } = grid;
  const seed = options.seed;
  if (seed === undefined) throw new Error('stochastic rounding needs a seed');
  const stream = options.stream ?? 0;
  const offset = options.offset ?? 0;
  const epoch = options.epoch ?? 0;
  const mask = normalShift > 0 ? (1 << normalShift) - 1 : 0;
  const words = randomWords;
  const wordsU32 = randomWordsU32;
  for (let start = 0; start < bits.length; start += RANDOM_CHUNK) {
    const count = Math.min(RANDOM_CHUNK, bits.length - start);
    fillRandomBits(wordsU32.subarray(0, count), seed, stream, offset + start, epoch);
    for (let j = 0; j < count; j++) {
      const i = start + j;
      const x = bits[i]!;
      const a = x & ABS_MASK;
      if (a >= INF_BITS) {
        out[i] = a === INF_BITS ? (x ^ a) | infinityBits : x;
        continue;
      }
      const r = a >= normalFromBits ? (a + (words[j]! & mask)) & ~mask : roundStochasticBelowNormal(a, grid, words[j]!);
      out[i] = (x ^ a) | (r > maxBits ? overflowBits : r);
    }
  }
}

function int32View(array: Float32Array): Int32Array {
  return new Int32Array(array.buffer, array.byteOffset, array.length);
}

/**
 * dst[i] = src[i] rounded onto `format`'s grid (see the header for the exact rules). src and dst
 * may be the same array; they must have the same length.
 */
export function quantise(src: Float32Array, dst: Float32Array, format: FormatEncoding, options: QuantiseOptions): void {
  if (src.length !== dst.length) throw new RangeError(`quantise: src has ${src.length} elements, dst ${dst.length}`);
  let input = int32View(src);
  const output = int32View(dst);
  if (options.viaFp16) {
    quantiseNearest(input, output, gridOf(FP16, options.overflow));
    input = output;
  }
  const grid = gridOf(format, options.overflow);
  if (options.rounding === 'nearest') quantiseNearest(input, output, grid);
  else quantiseStochastic(input, output, grid, options);
}
