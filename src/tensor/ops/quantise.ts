import type { QuantiseOptions } from '../../backend/backend.ts';
import type { FloatFormat } from '../../formats/format.ts';
import { record } from '../autograd.ts';
import { randomContext } from '../random.ts';
import type { Tensor } from '../tensor.ts';
import { alias, empty } from './creation.ts';

export interface CastSpec {
  /** A named format (src/formats: parseFormat); its encoding is what the kernel needs. */
  readonly format: FloatFormat;
  readonly rounding: 'nearest' | 'stochastic';
  readonly overflow?: 'saturate' | 'inf';
  readonly viaFp16?: boolean;
}

function cast(x: Tensor, spec: CastSpec): Tensor {
  const ctx = randomContext();
  const options: QuantiseOptions = {
    rounding: spec.rounding,
    overflow: spec.overflow ?? 'saturate',
    viaFp16: spec.viaFp16 ?? false,
    seed: ctx.seed,
    stream: spec.rounding === 'stochastic' ? ctx.nextStream() : 0,
  };
  const out = empty(x.shape, 'f32', x.backend);
  x.backend.quantise(x.storage, out.storage, x.size, spec.format, options, spec.rounding === 'stochastic' ? ctx.epoch() : null);
  return out;
}

/**
 * Quantise-to-format as an ordinary op (design note 5): the forward pass rounds the values to
 * `forward` (straight-through gradient), the backward pass rounds the incoming gradient to
 * `backward`. Either may be null (identity in that direction).
 */
export function quantise(x: Tensor, forward: CastSpec | null, backward: CastSpec | null = null): Tensor {
  const out = forward ? cast(x, forward) : alias(x);
  return record(out, [x], (g) => [backward ? cast(g, backward) : alias(g)]);
}

/** Rounds values in place (no autograd): stored weights after an update, optimiser state. */
export function quantiseInPlace(x: Tensor, spec: CastSpec): void {
  const ctx = randomContext();
  x.backend.quantise(
    x.storage,
    x.storage,
    x.size,
    spec.format,
    { rounding: spec.rounding, overflow: spec.overflow ?? 'saturate', viaFp16: spec.viaFp16 ?? false, seed: ctx.seed, stream: spec.rounding === 'stochastic' ? ctx.nextStream() : 0 },
    spec.rounding === 'stochastic' ? ctx.epoch() : null,
  );
}
