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

/** The backend's rounding options for a cast, except the random stream. */
function roundingOptions(spec: CastSpec, seed: number): Omit<QuantiseOptions, 'stream'> {
  return { rounding: spec.rounding, overflow: spec.overflow ?? 'saturate', viaFp16: spec.viaFp16 ?? false, seed };
}

/** Writes x rounded to `spec` into out (which may be x), drawing a random stream if stochastic. */
function quantiseInto(x: Tensor, out: Tensor, spec: CastSpec): void {
  const ctx = randomContext();
  const stochastic = spec.rounding === 'stochastic';
  const options: QuantiseOptions = { ...roundingOptions(spec, ctx.seed), stream: stochastic ? ctx.nextStream() : 0 };
  x.backend.quantise(x.storage, out.storage, x.size, spec.format, options, stochastic ? ctx.epoch() : null);
}

function cast(x: Tensor, spec: CastSpec): Tensor {
  const out = empty(x.shape, 'f32', x.backend);
  quantiseInto(x, out, spec);
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
  quantiseInto(x, x, spec);
}

/**
 * quantiseInPlace on each tensor in order (each draws its random stream in that order), in one
 * backend call: one launch for all of an optimiser's weights and moments. On CUDA the call keeps a
 * device table per tensor set: meant for sets that recur every step.
 */
export function quantiseManyInPlace(tensors: readonly Tensor[], spec: CastSpec): void {
  const first = tensors[0];
  if (!first) return;
  const ctx = randomContext();
  const stochastic = spec.rounding === 'stochastic';
  const items = tensors.map((t) => {
    if (t.backend !== first.backend) throw new Error(`quantiseManyInPlace: ${t.describe()} is on another backend than ${first.describe()}`);
    return { storage: t.storage, n: t.size, stream: stochastic ? ctx.nextStream() : 0 };
  });
  first.backend.quantiseMany(items, spec.format, roundingOptions(spec, ctx.seed), stochastic ? ctx.epoch() : null);
}

/** Leaves whose gradient every backward pass rounds, once that pass has written all of it. */
const gradientCasts = new WeakMap<Tensor, CastSpec>();

/**
 * Rounds `leaf`'s gradient to `spec` at the end of each backward pass, with one launch for all
 * such leaves: what a quantise(leaf, null, spec) at each use would do when the leaf is used once
 * per pass, without the extra gradient tensor and copy, and leaving the weight-gradient products
 * free to write straight into the leaf's gradient (grouped, at the end of the pass). A leaf used
 * several times has the sum of its contributions rounded once. Returns the leaf.
 */
export function castGradient(leaf: Tensor, spec: CastSpec): Tensor {
  if (!leaf.isLeaf) throw new Error(`castGradient: ${leaf.describe()} is not a leaf`);
  gradientCasts.set(leaf, spec);
  return leaf;
}

export function hasGradientCast(leaf: Tensor): boolean {
  return gradientCasts.has(leaf);
}

/** For autograd: rounds the gradients of these leaves (each has a cast and a written gradient). */
export function castLeafGradients(leaves: readonly Tensor[]): void {
  // One quantiseMany per (cast, backend): in a model, one for all its parameters.
  const groups = new Map<CastSpec, Map<Tensor['backend'], Tensor[]>>();
  for (const leaf of leaves) {
    const spec = gradientCasts.get(leaf);
    if (!spec) throw new Error(`castLeafGradients: ${leaf.describe()} has no gradient cast`);
    const byBackend = groups.get(spec) ?? new Map<Tensor['backend'], Tensor[]>();
    groups.set(spec, byBackend);
    const grads = byBackend.get(leaf.backend) ?? [];
    byBackend.set(leaf.backend, grads);
    grads.push(leaf.grad!);
  }
  for (const [spec, byBackend] of groups) for (const grads of byBackend.values()) quantiseManyInPlace(grads, spec);
}
