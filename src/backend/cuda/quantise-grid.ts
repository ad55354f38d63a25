/**
 * Host side of the quantise kernel: a format's rounding grid packed into the kernel's QuantGrid
 * struct. The constants are those of src/formats/quantise.ts (gridOf), derived from the same
 * formatLimits, so both backends round onto the same grid.
 */
import type { QuantiseFormat, QuantiseOptions } from '../backend.ts';
import { formatLimits, type FormatEncoding } from '../../formats/format.ts';
import { QUANT_GRID_WORDS } from './kernels/random.ts';

const INF_BITS = 0x7f800000;
const QUIET_NAN_BITS = 0x7fc00000;
const FLOAT32_MIN_NORMAL_BITS = 0x00800000;
export const FP16_ENCODING: FormatEncoding = { exponentBits: 5, mantissaBits: 10, bias: 15, special: 'ieee' };

const scratch = new Float32Array(1);
const scratchBits = new Int32Array(scratch.buffer);
function float32Bits(value: number): number {
  scratch[0] = value;
  return scratchBits[0]!;
}

/** QuantGrid words: mantissaBits, minExponent, bias, normalShift, normalFromBits, maxBits,
 * minSubnormalBits, overflowBits, infinityBits. */
export function quantGridWords(encoding: QuantiseFormat, overflow: QuantiseOptions['overflow']): Int32Array {
  const limits = formatLimits(encoding);
  const maxBits = float32Bits(limits.maxAbs);
  const formatOverflow = encoding.special === 'ieee' ? INF_BITS : encoding.special === 'fn' ? QUIET_NAN_BITS : maxBits;
  const overflowBits = overflow === 'saturate' ? maxBits : formatOverflow;
  const words = new Int32Array(QUANT_GRID_WORDS);
  words.set([
    encoding.mantissaBits,
    limits.minExponent,
    encoding.bias,
    23 - encoding.mantissaBits,
    Math.max(float32Bits(limits.minNormal), FLOAT32_MIN_NORMAL_BITS),
    maxBits,
    float32Bits(limits.minSubnormal),
    overflowBits,
    overflowBits,
  ]);
  return words;
}
