import type { AttentionOperand, DType } from '../../backend/backend.ts';
import type { GradSink } from '../autograd.ts';
import { formatShape, type Tensor } from '../tensor.ts';
import { empty, zeros } from './creation.ts';
import { asStrided } from './shape.ts';

/**
 * A [B, H, S, D] window onto a tensor with a contiguous last (head) axis: element (b, h, s, d) at
 * offset + b·strides[0] + h·strides[1] + s·strides[2] + d. Fused attention reads q, k and v
 * through such windows, e.g. straight out of a fused [B, S, 3, H, D] projection, so no strided
 * copy gathers them first and none scatters their gradients back.
 */
export interface HeadsView {
  readonly tensor: Tensor;
  readonly shape: readonly [number, number, number, number];
  readonly strides: readonly [number, number, number];
  readonly offset: number;
}

/** A heads window onto x; throws when it reaches outside x. */
export function headsView(x: Tensor, shape: readonly [number, number, number, number], strides: readonly [number, number, number], offset = 0): HeadsView {
  const [B, H, S, D] = shape;
  const last = offset + (B - 1) * strides[0] + (H - 1) * strides[1] + (S - 1) * strides[2] + D - 1;
  if (shape.some((d) => !Number.isInteger(d) || d < 1) || strides.some((s) => !Number.isInteger(s) || s < 0) || offset < 0 || last >= x.size) {
    throw new Error(`attention: heads window ${formatShape(shape)} (strides ${strides.join(', ')}, offset ${offset}) does not fit ${x.describe()}`);
  }
  return { tensor: x, shape: [B, H, S, D], strides: [strides[0], strides[1], strides[2]], offset };
}

/** A contiguous [B, H, S, D] tensor as a heads window. */
export function heads(x: Tensor): HeadsView {
  if (x.rank !== 4) throw new Error(`attention: expected [B, H, S, D], got ${x.describe()}`);
  const [B, H, S, D] = x.shape;
  return headsView(x, [B, H, S, D], [H * S * D, S * D, D]);
}

/** A window's contents as a contiguous [B, H, S, D] tensor: one strided copy, whose gradient flows back into the window. */
export function copyHeads(v: HeadsView): Tensor {
  return asStrided(v.tensor, v.shape, [...v.strides, 1], v.offset);
}

export function operand(v: HeadsView): AttentionOperand {
  return { storage: v.tensor.storage, offset: v.offset, strides: v.strides };
}

/** The same window onto another tensor of the source's shape (its gradient). */
export function onto(v: HeadsView, storageOf: Tensor): AttentionOperand {
  return { storage: storageOf.storage, offset: v.offset, strides: v.strides };
}

const coverageCache = new Map<string, { tiles: boolean; injective: boolean }>();

/**
 * How windows onto one tensor of `size` elements cover it: `tiles` when each element is in exactly
 * one window position, `injective` when none is in two (no zero strides, no overlaps).
 */
export function windowCoverage(size: number, views: readonly HeadsView[]): { tiles: boolean; injective: boolean } {
  const key = `${size}|${views.map((v) => `${v.shape}/${v.strides}/${v.offset}`).join('|')}`;
  let coverage = coverageCache.get(key);
  if (coverage === undefined) {
    const hits = new Uint8Array(size);
    let once = true;
    for (const v of views) {
      const [B, H, S, D] = v.shape;
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < H; h++) {
          for (let s = 0; s < S; s++) {
            const row = v.offset + b * v.strides[0] + h * v.strides[1] + s * v.strides[2];
            for (let d = 0; d < D; d++) if (hits[row + d]++ !== 0) once = false;
          }
        }
      }
    }
    coverage = { tiles: once && hits.every((x) => x === 1), injective: once };
    coverageCache.set(key, coverage);
  }
  return coverage;
}

/** A source's gradient buffer, and the beta its windows' writes use. */
export interface GradientTarget {
  readonly tensor: Tensor;
  /** 1: add into the buffer (it holds a gradient, or zeros two overlapping windows both add to). */
  readonly beta: 0 | 1;
  /** The buffer is the sink's: return SUNK for it. */
  readonly sunk: boolean;
}

/**
 * Where a source's gradient goes when an op writes it through windows (a new buffer of `dtype`,
 * which must be float32 unless the windows tile the source). With `adds` (the op's
 * kernels can add, as GEMMs with beta 1 do) an accumulating sink is added into, and windows of one
 * source that leave gaps add onto zeros (they may overlap); otherwise an accumulating sink gets a
 * new tensor, which autograd adds. A written sink, or a new tensor, is zero-filled unless the
 * windows cover it exactly.
 */
export function gradientTarget(source: Tensor, sink: GradSink | null | undefined, views: readonly HeadsView[], adds: boolean, dtype: DType = 'f32'): GradientTarget {
  if (adds && sink?.accumulate) return { tensor: sink.target, beta: 1, sunk: true };
  const covered = windowCoverage(source.size, views).tiles;
  const beta = adds && !covered && views.length > 1 ? 1 : 0;
  if (sink && !sink.accumulate) {
    if (!covered) source.backend.fill(sink.target.storage, 0, sink.target.size, 0);
    return { tensor: sink.target, beta, sunk: true };
  }
  if (dtype !== 'f32' && !covered) throw new Error(`attention: a ${dtype} gradient buffer needs windows that cover ${source.describe()}`);
  return { tensor: covered ? empty(source.shape, dtype, source.backend) : zeros(source.shape, 'f32', source.backend), beta, sunk: false };
}
