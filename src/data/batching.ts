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

type Ids = Uint16Array | Uint32Array;

/** Writes window s into row `row` of tokens/mask; returns the number of scored positions. */
export function writeWindow(data: Ids, s: number, opts: WindowOptions, tokens: Int32Array, mask: Float32Array, row: number): number {
  const { sequenceLength, overlap } = opts;
  const target = sequenceLength - overlap;
  const begin = Math.max(0, s - overlap);
  const end = Math.min(data.length, s + target);
  const base = row * sequenceLength;
  const real = end - begin;
  for (let i = 0; i < sequenceLength; i++) {
    tokens[base + i] = i < real ? data[begin + i] : 0;
    mask[base + i] = i >= s - begin && i < real ? 1 : 0;
  }
  return Math.max(0, real - (s - begin));
}

/** Evaluation: s = 0, T, 2T, … in order, every character scored once; the last batch is filled by
 * repeating its last window with an all-zero mask. */
export function* evalBatches(data: Ids, opts: WindowOptions): Generator<Batch> {
  const target = opts.sequenceLength - opts.overlap;
  const starts: number[] = [];
  for (let s = 0; s < data.length; s += target) starts.push(s);
  for (let first = 0; first < starts.length; first += opts.sequences) {
    const tokens = new Int32Array(opts.sequences * opts.sequenceLength);
    const mask = new Float32Array(opts.sequences * opts.sequenceLength);
    let scored = 0;
    for (let row = 0; row < opts.sequences; row++) {
      const index = first + row;
      if (index < starts.length) scored += writeWindow(data, starts[index], opts, tokens, mask, row);
      else {
        writeWindow(data, starts[starts.length - 1], opts, tokens, mask, row);
        mask.fill(0, row * opts.sequenceLength, (row + 1) * opts.sequenceLength);
      }
    }
    yield { tokens, mask, scored };
  }
}

/** Number of evaluation batches of a split. */
export function evalBatchCount(length: number, opts: WindowOptions): number {
  const target = opts.sequenceLength - opts.overlap;
  return Math.ceil(Math.ceil(length / target) / opts.sequences);
}

/**
 * The seeded generator of training window starts: Mulberry32, whose whole state is one uint32, so
 * a checkpoint can record it and a resumed run draws the same windows. (The paper's code used
 * numpy's PCG64; the streams differ, the distribution does not.)
 */
export class WindowSampler {
  constructor(private state: number) {
    this.state = state >>> 0;
  }

  get position(): number {
    return this.state;
  }

  /** Uniform integer in [0, n). */
  nextInt(n: number): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return Math.floor(u * n);
  }
}

/** Training: an endless stream of batches whose window starts are uniform over [0, N − T). */
export function* trainBatches(data: Ids, opts: WindowOptions, sampler: WindowSampler): Generator<Batch> {
  const target = opts.sequenceLength - opts.overlap;
  const range = Math.max(1, data.length - target);
  for (;;) {
    const tokens = new Int32Array(opts.sequences * opts.sequenceLength);
    const mask = new Float32Array(opts.sequences * opts.sequenceLength);
    let scored = 0;
    for (let row = 0; row < opts.sequences; row++) scored += writeWindow(data, sampler.nextInt(range), opts, tokens, mask, row);
    yield { tokens, mask, scored };
  }
}
