import type { QuantiseFormat, QuantiseOptions } from '../backend.ts';
import { quantise } from '../../formats/quantise.ts';

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
