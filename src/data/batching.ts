import { ReproError } from '../errors.ts';
import type { Ids } from './vocabulary.ts';

/**
 * Windows and batches exactly as experiments.md §A3: a window starting at s covers
 * data[max(0, s − overlap) : s + targetLength], zero-padded to sequenceLength; its mask scores the
 * positions from (s − begin) up to the last real token, so only the `targetLength` new
 * characters count and the first up-to-`overlap` positions are context.
 */
export interface WindowOptions {
  readonly sequences: number;
  readonly sequenceLength: number;
  readonly overlap: number;
}

export interface Batch {
  /** int32 [sequences × sequenceLength] */
  readonly tokens: Int32Array;
  /** float32 [sequences × sequenceLength], 1 = scored */
  readonly mask: Float32Array;
  /** Σ mask */
  readonly scored: number;
}

/** Characters newly scored per window: sequenceLength − overlap. */
export function targetLength(opts: WindowOptions): number {
  const { sequences, sequenceLength, overlap } = opts;
  if (!Number.isInteger(sequences) || sequences < 1) throw new ReproError(`data.sequences: expected a positive integer, got ${sequences}`);
  if (!Number.isInteger(sequenceLength) || sequenceLength < 1) throw new ReproError(`data.sequence_length: expected a positive integer, got ${sequenceLength}`);
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= sequenceLength) {
    throw new ReproError(`data.overlap: expected an integer in [0, ${sequenceLength}), got ${overlap}`);
  }
  return sequenceLength - overlap;
}

/** Writes window s into row `row` of tokens/mask; returns the number of scored positions. */
export function writeWindow(data: Ids, s: number, opts: WindowOptions, tokens: Int32Array, mask: Float32Array, row: number): number {
  const { sequenceLength, overlap } = opts;
  const begin = Math.max(0, s - overlap);
  const end = Math.min(data.length, s + sequenceLength - overlap);
  const base = row * sequenceLength;
  const real = Math.max(0, end - begin);
  const firstScored = s - begin;
  for (let i = 0; i < sequenceLength; i++) {
    tokens[base + i] = i < real ? data[begin + i] : 0;
    mask[base + i] = i >= firstScored && i < real ? 1 : 0;
  }
  return Math.max(0, real - firstScored);
}

function emptyBatch(opts: WindowOptions): { tokens: Int32Array; mask: Float32Array } {
  const size = opts.sequences * opts.sequenceLength;
  return { tokens: new Int32Array(size), mask: new Float32Array(size) };
}

/** Number of evaluation windows (s = 0, T, 2T, … < N) and batches of a split of `length` ids. */
export function evalWindowCount(length: number, opts: WindowOptions): number {
  return Math.ceil(length / targetLength(opts));
}

export function evalBatchCount(length: number, opts: WindowOptions): number {
  return Math.ceil(evalWindowCount(length, opts) / opts.sequences);
}

/**
 * Evaluation batches (§A3): windows at s = 0, T, 2T, … while s < N, in order, 8 (`sequences`) per
 * batch, so every character is scored exactly once. The last batch is filled by repeating its
 * last window with an all-zero mask.
 */
export function* evalBatches(data: Ids, opts: WindowOptions): Generator<Batch> {
  const target = targetLength(opts);
  const windows = evalWindowCount(data.length, opts);
  for (let first = 0; first < windows; first += opts.sequences) {
    const { tokens, mask } = emptyBatch(opts);
    let scored = 0;
    for (let row = 0; row < opts.sequences; row++) {
      const window = first + row;
      if (window < windows) {
        scored += writeWindow(data, window * target, opts, tokens, mask, row);
      } else {
        writeWindow(data, (windows - 1) * target, opts, tokens, mask, row);
        mask.fill(0, row * opts.sequenceLength, (row + 1) * opts.sequenceLength);
      }
    }
    yield { tokens, mask, scored };
  }
}

/**
 * The seeded generator of training window starts: Mulberry32 (Tommy Ettinger's 32-bit
 * generator). Its whole state is one uint32 (`state`), so a checkpoint can record it and
 * `new WindowSampler(state)` continues the same stream. The paper's code used numpy's PCG64;
 * the streams differ, the distribution (uniform starts) does not.
 */
export class WindowSampler {
  private current: number;

  constructor(seed: number) {
    this.current = seed >>> 0;
  }

  get state(): number {
    return this.current;
  }

  /** Uniform integer in [0, n) for n ≤ 2³², by rejection (no modulo bias). */
  nextInt(n: number): number {
    const limit = Math.floor(4294967296 / n) * n;
    for (;;) {
      const u = this.nextUint32();
      if (u < limit) return u % n;
    }
  }

  private nextUint32(): number {
    this.current = (this.current + 0x6d2b79f5) >>> 0;
    let t = this.current;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
}

/**
 * Training (§A3): an endless stream of batches whose window starts are drawn uniformly from
 * [0, N − T). A split no longer than T has the single start 0. Pass a seed, or a WindowSampler
 * whose `state` the caller wants to read for checkpoints.
 */
export function* trainBatches(data: Ids, opts: WindowOptions, seed: number | WindowSampler): Generator<Batch, never> {
  const target = targetLength(opts);
  if (data.length === 0) throw new ReproError('training split is empty');
  const sampler = typeof seed === 'number' ? new WindowSampler(seed) : seed;
  const starts = Math.max(1, data.length - target);
  for (;;) {
    const { tokens, mask } = emptyBatch(opts);
    let scored = 0;
    for (let row = 0; row < opts.sequences; row++) scored += writeWindow(data, sampler.nextInt(starts), opts, tokens, mask, row);
    yield { tokens, mask, scored };
  }
}

/**
 * §A6's "train" estimate: the first 1 + ⌊N_valid / (sequences × T)⌋ batches of a fresh training
 * stream with the run's batching seed, i.e. the same windows as the first training batches.
 */
export function* trainEstimateBatches(train: Ids, validLength: number, opts: WindowOptions, seed: number): Generator<Batch> {
  const count = 1 + Math.floor(validLength / (opts.sequences * targetLength(opts)));
  const stream = trainBatches(train, opts, seed);
  for (let i = 0; i < count; i++) yield stream.next().value;
}
