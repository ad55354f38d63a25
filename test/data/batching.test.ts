import { describe, expect, it } from 'vitest';
import { WindowSampler, evalBatchCount, evalBatches, trainBatches, trainEstimateBatches, writeWindow } from '../../src/data/batching.ts';

const data = Uint16Array.from({ length: 23 }, (_, i) => i + 1); // ids 1..23, so a padding 0 is visible
const opts = { sequences: 2, sequenceLength: 8, overlap: 3 }; // target length 5

function window(s: number) {
  const tokens = new Int32Array(8), mask = new Float32Array(8);
  const scored = writeWindow(data, s, opts, tokens, mask, 0);
  return { tokens: Array.from(tokens), mask: Array.from(mask), scored };
}

describe('windows (experiments.md §A3)', () => {
  it('first window: no context, positions 0..T−1 scored', () => {
    expect(window(0)).toEqual({ tokens: [1, 2, 3, 4, 5, 0, 0, 0], mask: [1, 1, 1, 1, 1, 0, 0, 0], scored: 5 });
  });

  it('a start inside the overlap gets only the context there is', () => {
    expect(window(2)).toEqual({ tokens: [1, 2, 3, 4, 5, 6, 7, 0], mask: [0, 0, 1, 1, 1, 1, 1, 0], scored: 5 });
  });

  it('later windows: overlap positions are context only', () => {
    expect(window(10)).toEqual({ tokens: [8, 9, 10, 11, 12, 13, 14, 15], mask: [0, 0, 0, 1, 1, 1, 1, 1], scored: 5 });
  });

  it('a window running off the end is zero-padded and masked', () => {
    expect(window(20)).toEqual({ tokens: [18, 19, 20, 21, 22, 23, 0, 0], mask: [0, 0, 0, 1, 1, 1, 0, 0], scored: 3 });
  });

  it('rejects an overlap that leaves nothing to score', () => {
    expect(() => evalBatches(data, { ...opts, overlap: 8 }).next()).toThrow(/data\.overlap: expected an integer in \[0, 8\), got 8/);
  });
});

describe('evaluation batches', () => {
  it('score every character exactly once, in order, and fill the last batch with a masked repeat', () => {
    const batches = [...evalBatches(data, opts)];
    expect(batches.length).toBe(evalBatchCount(data.length, opts));
    expect(batches.length).toBe(3); // 5 windows (starts 0, 5, 10, 15, 20) in batches of 2
    const scoredIds: number[] = [];
    for (const b of batches) {
      for (let i = 0; i < b.tokens.length; i++) if (b.mask[i]) scoredIds.push(b.tokens[i]);
      expect(b.scored).toBe(b.mask.reduce((s, m) => s + m, 0));
    }
    expect(scoredIds).toEqual(Array.from(data));
    const last = batches[2];
    expect(Array.from(last.tokens.subarray(0, 8))).toEqual([18, 19, 20, 21, 22, 23, 0, 0]);
    expect(Array.from(last.tokens.subarray(8))).toEqual(Array.from(last.tokens.subarray(0, 8)));
    expect(Array.from(last.mask.subarray(8)).every((m) => m === 0)).toBe(true);
    expect(last.scored).toBe(3);
  });

  it('cover a split that is an exact multiple of the target length without an empty window', () => {
    const exact = data.subarray(0, 20); // windows 0, 5, 10, 15
    const batches = [...evalBatches(exact, opts)];
    expect(batches.length).toBe(2);
    expect(batches.reduce((s, b) => s + b.scored, 0)).toBe(20);
    expect(batches[1].scored).toBe(10);
  });

  it('at the paper sizes, score each of N characters once (N not a multiple of 8 × 224)', () => {
    const n = 5_000;
    const ids = Uint16Array.from({ length: n }, (_, i) => i % 60_000);
    const paper = { sequences: 8, sequenceLength: 256, overlap: 32 };
    const seen = new Uint8Array(n);
    let scored = 0;
    for (const b of evalBatches(ids, paper)) {
      scored += b.scored;
      for (let i = 0; i < b.tokens.length; i++) if (b.mask[i]) seen[b.tokens[i]]++;
    }
    expect(scored).toBe(n);
    expect(seen.every((c) => c === 1)).toBe(true);
  });
});

describe('training batches', () => {
  const take = (seed: number | WindowSampler, count = 50) => {
    const stream = trainBatches(data, opts, seed);
    return Array.from({ length: count }, () => Array.from(stream.next().value.tokens));
  };

  it('are reproducible from the seed and differ between seeds', () => {
    expect(take(3)).toEqual(take(3));
    expect(take(3)).not.toEqual(take(4));
  });

  it('continue the same stream from a recorded sampler state', () => {
    const sampler = new WindowSampler(11);
    const stream = trainBatches(data, opts, sampler);
    for (let i = 0; i < 7; i++) stream.next();
    const resumed = take(sampler.state, 5);
    const continued = Array.from({ length: 5 }, () => Array.from(stream.next().value.tokens));
    expect(resumed).toEqual(continued);
  });

  it('draw window starts uniformly from [0, N − T), masking the overlap', () => {
    const starts = new Array(data.length).fill(0);
    const stream = trainBatches(data, opts, 1);
    for (let i = 0; i < 9_000; i++) {
      const b = stream.next().value;
      for (let row = 0; row < 2; row++) {
        const tokens = b.tokens.subarray(row * 8, row * 8 + 8);
        const mask = b.mask.subarray(row * 8, row * 8 + 8);
        const firstScored = mask.indexOf(1);
        const s = tokens[firstScored] - 1; // ids are position + 1
        starts[s]++;
        expect(firstScored).toBe(Math.min(s, 3));
        expect(b.mask.subarray(row * 8, row * 8 + 8).reduce((a, m) => a + m, 0)).toBe(5);
      }
    }
    expect(starts.slice(18).every((c) => c === 0)).toBe(true); // N − T = 18
    for (const c of starts.slice(0, 18)) expect(Math.abs(c - 1000)).toBeLessThan(150);
  });

  it('§A6 train estimate = the first 1 + ⌊N_valid / (sequences × T)⌋ batches of the stream', () => {
    const estimate = [...trainEstimateBatches(data, 21, opts, 5)].map((b) => Array.from(b.tokens));
    expect(estimate.length).toBe(1 + Math.floor(21 / 10));
    expect(estimate).toEqual(take(5, 3));
  });
});
