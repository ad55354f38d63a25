import { describe, expect, it } from 'vitest';
import { median, searchLearningRate, type LrTrialRunner } from '../../src/train/lr-search.ts';

/** A runner that records its calls and answers from a loss function of (lr, rep). */
function recorder(loss: (lr: number, rep: number) => number) {
  const calls: [number, number][] = [];
  const run: LrTrialRunner = async (lr, rep) => {
    calls.push([lr, rep]);
    return loss(lr, rep);
  };
  return { calls, run };
}

describe('median', () => {
  it('matches numpy: middle value, mean of the middle two, NaN if any NaN', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([1, NaN, 2])).toBeNaN();
    expect(median([5])).toBe(5);
  });
});

describe('searchLearningRate (§A7)', () => {
  it('reproduces the worked example: loss (15 - lr)^2, lr 3, 6, 12, 24, threshold 30 -> best 12', async () => {
    const { calls, run } = recorder((lr) => (15 - lr) ** 2);
    const result = await searchLearningRate({ start: 3, step: 2, threshold: 30, reps: 1 }, run);
    expect(result.bestLr).toBe(12);
    expect(result.bestLoss).toBe(9);
    expect(result.trials.map((t) => t.lr)).toEqual([3, 6, 12, 24]);
    expect(result.trials.map((t) => t.median)).toEqual([144, 81, 9, 81]);
    expect(result.stoppedBy).toBe('threshold');
    expect(calls).toEqual([[3, 0], [6, 0], [12, 0], [24, 0]]);
  });

  it('takes the median over reps and runs each rep once per lr', async () => {
    // rep 2 is an outlier that the median ignores
    const { calls, run } = recorder((lr, rep) => (rep === 2 ? 100 : (15 - lr) ** 2 + rep));
    const result = await searchLearningRate({ start: 3, step: 2, threshold: 30, reps: 3 }, run);
    expect(result.bestLr).toBe(12);
    expect(result.trials[2]).toEqual({ lr: 12, losses: [9, 10, 100], median: 10 });
    expect(calls.filter(([lr]) => lr === 6).map(([, rep]) => rep)).toEqual([0, 1, 2]);
  });

  it('stops at a NaN median and keeps the best finite lr', async () => {
    const { run } = recorder((lr, rep) => (lr >= 8 && rep === 1 ? NaN : 10 - lr));
    const result = await searchLearningRate({ start: 1, step: 2, threshold: 0.1, reps: 3 }, run);
    expect(result.trials.map((t) => t.lr)).toEqual([1, 2, 4, 8]);
    expect(result.trials[3]?.median).toBeNaN();
    expect(result.bestLr).toBe(4);
    expect(result.bestLoss).toBe(6);
    expect(result.stoppedBy).toBe('nan');
  });

  it('returns the first lr (and NaN) when the very first median is NaN, after one lr only', async () => {
    const { calls, run } = recorder(() => NaN);
    const result = await searchLearningRate({ start: 2 ** -8, step: 2, threshold: 0.1, reps: 2 }, run);
    expect(result.bestLr).toBe(2 ** -8);
    expect(result.bestLoss).toBeNaN();
    expect(result.trials).toHaveLength(1);
    expect(calls).toHaveLength(2);
  });

  it('always tries at least two lrs when the first is finite, and only moves upwards', async () => {
    const { run } = recorder((lr) => lr * 1e6); // every step up is far worse
    const result = await searchLearningRate({ start: 2 ** -14, step: 2, threshold: 0.1, reps: 1 }, run);
    expect(result.trials.map((t) => t.lr)).toEqual([2 ** -14, 2 ** -13]);
    expect(result.bestLr).toBe(2 ** -14);
  });

  it('continues while the loss stays within the threshold of the best', async () => {
    const losses = new Map([
      [1, 5],
      [2, 4],
      [4, 4.05],
      [8, 4.1],
      [16, 4.2],
    ]);
    const { run } = recorder((lr) => losses.get(lr) as number);
    const result = await searchLearningRate({ start: 1, step: 2, threshold: 0.1, reps: 1 }, run);
    // 4.1 is not > 4 + 0.1 (strict), so 16 is tried; 4.2 ends the search
    expect(result.trials.map((t) => t.lr)).toEqual([1, 2, 4, 8, 16]);
    expect(result.bestLr).toBe(2);
  });

  it('honours maxTrials and can run reps concurrently', async () => {
    let running = 0;
    let peak = 0;
    const run: LrTrialRunner = async (lr) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      return 1 / lr;
    };
    const result = await searchLearningRate({ start: 1, step: 4, threshold: 0.1, reps: 3, maxTrials: 2, parallelReps: true }, run);
    expect(result.trials.map((t) => t.lr)).toEqual([1, 4]);
    expect(result.stoppedBy).toBe('max_trials');
    expect(result.bestLr).toBe(4);
    expect(peak).toBe(3);
  });

  it('rejects settings that would never stop or never start', async () => {
    const run: LrTrialRunner = async () => 1;
    await expect(searchLearningRate({ start: 1, step: 1, threshold: 0.1, reps: 1 }, run)).rejects.toThrow(/step must be > 1/);
    await expect(searchLearningRate({ start: 0, step: 2, threshold: 0.1, reps: 1 }, run)).rejects.toThrow(/start/);
    await expect(searchLearningRate({ start: 1, step: 2, threshold: -1, reps: 1 }, run)).rejects.toThrow(/threshold/);
    await expect(searchLearningRate({ start: 1, step: 2, threshold: 0.1, reps: 0 }, run)).rejects.toThrow(/reps/);
  });
});
