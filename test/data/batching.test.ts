import { describe, expect, it } from 'vitest';
import { WindowSampler, evalBatchCount, evalBatches, trainBatches, writeWindow } from '../../src/data/batching.ts';

const data = Uint16Array.from({ length: 23 }, (_, i) => i + 1); // ids 1..23 (0 is padding)
const opts = { sequences: 2, sequenceLength: 8, overlap: 3 }; // target length 5

describe('windows (experiments.md §A3)', () => {
  it('first window: no context, positions 0..T−1 scored', () => {
    const tokens = new Int32Array(8), mask = new Float32Array(8);
    expect(writeWindow(data, 0, opts, tokens, mask, 0)).toBe(5);
    expect(Array.from(tokens)).toEqual([1, 2, 3, 4, 5, 0, 0, 0]);
    expect(Array.from(mask)).toEqual([1, 1, 1, 1, 1, 0, 0, 0]);
  });

  it('later windows: overlap positions are context only', () => {
    const tokens = new Int32Array(8), mask = new Float32Array(8);
    expect(writeWindow(data, 10, opts, tokens, mask, 0)).toBe(5);
    expect(Array.from(tokens)).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
    expect(Array.from(mask)).toEqual([0, 0, 0, 1, 1, 1, 1, 1]);
  });

  it('a window running off the end is zero-padded and masked', () => {
    const tokens = new Int32Array(8), mask = new Float32Array(8);
    expect(writeWindow(data, 20, opts, tokens, mask, 0)).toBe(3);
    expect(Array.from(tokens)).toEqual([18, 19, 20, 21, 22, 23, 0, 0]);
    expect(Array.from(mask)).toEqual([0, 0, 0, 1, 1, 1, 0, 0]);
  });

  it('evaluation scores every character exactly once, in order, and fills the last batch', () => {
    const batches = [...evalBatches(data, opts)];
    expect(batches.length).toBe(evalBatchCount(data.length, opts));
    expect(batches.length).toBe(3); // 5 windows (starts 0,5,10,15,20) in batches of 2
    const scoredIds: number[] = [];
    for (const b of batches) {
      for (let i = 0; i < b.tokens.length; i++) if (b.mask[i]) scoredIds.push(b.tokens[i]);
      expect(b.scored).toBe(b.mask.reduce((s, m) => s + m, 0));
    }
    expect(scoredIds).toEqual(Array.from(data));
    const last = batches[2];
    expect(Array.from(last.tokens.subarray(8))).toEqual(Array.from(last.tokens.subarray(0, 8)));
    expect(Array.from(last.mask.subarray(8)).every((m) => m === 0)).toBe(true);
  });

  it('training windows are uniform over [0, N − T) and reproducible from the seed', () => {
    const take = (seed: number) => {
      const it = trainBatches(data, opts, new WindowSampler(seed));
      return Array.from({ length: 50 }, () => Array.from(it.next().value!.tokens));
    };
    expect(take(3)).toEqual(take(3));
    expect(take(3)).not.toEqual(take(4));
    const sampler = new WindowSampler(1);
    const counts = new Array(18).fill(0);
    for (let i = 0; i < 18_000; i++) counts[sampler.nextInt(18)]++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
  });
});
