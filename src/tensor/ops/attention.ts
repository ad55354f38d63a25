import type { AttentionOperand } from '../../backend/backend.ts';

/** The largest head size T.attention takes on every backend (see the backend interface). */
export { ATTENTION_MAX_HEAD_DIM } from '../../backend/backend.ts';
import { record, SUNK, type GradSink } from '../autograd.ts';
import { formatShape, type Tensor } from '../tensor.ts';
import { empty, zeros } from './creation.ts';

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

export interface AttentionOpOptions {
  readonly causal: boolean;
  /** multiplies q·kᵀ */
  readonly temperature: number;
  /** multiplies softmax(·)·v */
  readonly outputScale: number;
  /** Backward factors (unit scaling): the probabilities' gradient g·vᵀ, q's and k's, v's. */
  readonly probsGradScale: number;
  readonly logitGradScale: number;
  readonly valueGradScale: number;
}

function operand(v: HeadsView): AttentionOperand {
  return { storage: v.tensor.storage, offset: v.offset, strides: v.strides };
}

/** The same window onto another tensor of the source's shape (its gradient). */
function onto(v: HeadsView, storageOf: Tensor): AttentionOperand {
  return { storage: storageOf.storage, offset: v.offset, strides: v.strides };
}

const tilingCache = new Map<string, boolean>();

/** Whether the windows onto one tensor of `size` elements cover each element exactly once. */
function windowsTile(size: number, views: readonly HeadsView[]): boolean {
  const key = `${size}|${views.map((v) => `${v.shape}/${v.strides}/${v.offset}`).join('|')}`;
  let tiles = tilingCache.get(key);
  if (tiles === undefined) {
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
    tiles = once && hits.every((x) => x === 1);
    tilingCache.set(key, tiles);
  }
  return tiles;
}

/**
 * Fused causal-or-full scaled dot-product attention over heads windows (float32 throughout):
 * outputScale·softmax(temperature·q·kᵀ)·v, returned as a contiguous [B, S, H, D] tensor (the
 * heads side by side, as an output projection reads them). The [S, S] scores are never stored:
 * the backward recomputes them from q, k and the softmax's log-sum-exp. Unit-scaled backward
 * factors are separate: see AttentionOpOptions.
 */
export function attention(q: HeadsView, k: HeadsView, v: HeadsView, options: AttentionOpOptions): Tensor {
  const [B, H, S, D] = q.shape;
  const keys = k.shape[2];
  const fits = (x: HeadsView, s: number) => x.shape[0] === B && x.shape[1] === H && x.shape[2] === s && x.shape[3] === D;
  if (!fits(k, keys) || !fits(v, keys)) {
    throw new Error(`attention: q ${formatShape(q.shape)}, k ${formatShape(k.shape)} and v ${formatShape(v.shape)} do not fit together`);
  }
  if (options.causal && keys !== S) throw new Error(`attention: causal needs as many keys as queries, got ${keys} and ${S}`);
  const backend = q.tensor.backend;
  if (k.tensor.backend !== backend || v.tensor.backend !== backend) throw new Error('attention: operands live on different backends');
  const out = empty([B, S, H, D], 'f32', backend);
  const outView = headsView(out, [B, H, S, D], [S * H * D, D, H * D]);
  const logSumExp = empty([B, H, S], 'f32', backend);
  const shape = { batch: B, heads: H, queries: S, keys, headDim: D, temperature: options.temperature, outputScale: options.outputScale, causal: options.causal };
  backend.attention({ ...shape, q: operand(q), k: operand(k), v: operand(v), out: operand(outView), logSumExp: logSumExp.storage });
  const sources = [...new Set([q.tensor, k.tensor, v.tensor])];
  return record(out, sources, (g, sinks) => {
    // One gradient buffer per source tensor; q's, k's and v's windows land in their source's.
    const targets = sources.map((source, i) => gradientTarget(source, sinks[i], [q, k, v].filter((x) => x.tensor === source)));
    const targetOf = (x: HeadsView) => targets[sources.indexOf(x.tensor)]!.tensor;
    const delta = empty([B, H, S], 'f32', backend);
    backend.attentionGrad({
      ...shape,
      q: operand(q),
      k: operand(k),
      v: operand(v),
      out: operand(outView),
      logSumExp: logSumExp.storage,
      gradOut: onto(outView, g),
      gradQ: onto(q, targetOf(q)),
      gradK: onto(k, targetOf(k)),
      gradV: onto(v, targetOf(v)),
      delta: delta.storage,
      probsGradScale: options.probsGradScale,
      logitGradScale: options.logitGradScale,
      valueGradScale: options.valueGradScale,
    });
    delta.dispose();
    return targets.map((t) => (t.sunk ? SUNK : t.tensor));
  });
}

/** Where a source's gradient goes: its sink when that is written (not accumulated), else a new tensor; zero-filled unless the windows cover it. */
function gradientTarget(source: Tensor, sink: GradSink | null | undefined, views: readonly HeadsView[]): { tensor: Tensor; sunk: boolean } {
  const covered = windowsTile(source.size, views);
  if (sink && !sink.accumulate) {
    if (!covered) source.backend.fill(sink.target.storage, 0, sink.target.size, 0);
    return { tensor: sink.target, sunk: true };
  }
  return { tensor: covered ? empty(source.shape, 'f32', source.backend) : zeros(source.shape, 'f32', source.backend), sunk: false };
}
