/** Host-side conversion of 16-bit storage's contents for write() and read(): rare, off the training step. */
import type { Format16 } from '../backend.ts';
import { decodeCode, encodeValue } from '../../formats/codes.ts';
import { parseFormat } from '../../formats/registry.ts';
import { roundTo16Bits } from '../cpu/quantise.ts';

/** The codes of the values rounded to the format (nearest-even, overflow to infinity), as a kernel writes them. */
export function encode16(values: Float32Array | Int32Array, format: Format16): Uint16Array {
  const encoding = parseFormat(format);
  const rounded = roundTo16Bits(Float32Array.from(values), format);
  return Uint16Array.from(rounded, (v) => encodeValue(v, encoding));
}

export function decode16(codes: Uint16Array, format: Format16): Float32Array {
  const encoding = parseFormat(format);
  return Float32Array.from(codes, (c) => decodeCode(c, encoding));
}
