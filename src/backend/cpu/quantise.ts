import type { Format16, QuantiseFormat, QuantiseOptions } from '../backend.ts';
import { quantise } from '../../formats/quantise.ts';
import { parseFormat } from '../../formats/registry.ts';

/** The quantise kernel's CPU twin: the reference rounding of src/formats, on the epoch's stream. */
export function quantiseWithFormat(src: Float32Array, dst: Float32Array, format: QuantiseFormat, options: QuantiseOptions, epoch: number): void {
  quantise(src, dst, format, {
    rounding: options.rounding,
    overflow: options.overflow,
    viaFp16: options.viaFp16,
    seed: options.seed,
    stream: options.stream,
    offset: 0,
    epoch,
  });
}

/** values rounded to FP16 or BF16 in place (nearest-even, overflow to infinity), as tensor-core operands are read. */
export function roundTo16Bits(values: Float32Array, format: Format16): Float32Array {
  quantise(values, values, parseFormat(format), { rounding: 'nearest', overflow: 'inf' });
  return values;
}

/** The first n values as a kernel with a read format reads them: rounded (a copy), or with none as stored. */
export function readRounded(values: Float32Array, format: Format16 | null | undefined, n = values.length): Float32Array {
  return format ? roundTo16Bits(values.slice(0, n), format) : values;
}
