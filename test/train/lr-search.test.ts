import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSweep } from '../../src/config/sweep-load.ts';
import {
  median,
  searchLearningRate,
  type LrSearchResult,
  type LrSearchSettings,
  type LrTrialControl,
  type LrTrialRunner,
} from '../../src/train/lr-search.ts';
import { planSweep } from '../../src/train/sweep-plan.ts';
import { reproErrorOf, writeFiles } from '../config/helpers.ts';
import { seededRandom } from '../seeded-random.ts';

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

/** A runner call the test settles by hand. */
interface PendingRun {
  lr: number;
  rep: number;
  control: LrTrialControl;
  resolve: (loss: number) => void;
  reject: (error: unknown) => void;
}

function controllable() {
  const runs: PendingRun[] = [];
  const run: LrTrialRunner = (lr, rep, control) =>
    new Promise<number>((resolve, reject) => runs.push({ lr, rep, control, resolve, reject }));
  const find = (lr: number, rep = 0): PendingRun => {
    const found = runs.find((r) => r.lr === lr && r.rep === rep);
    if (!found) throw new Error(`lr ${lr} rep ${rep} was never started`);
    return found;
  };
  return { runs, run, find };
}

/** Lets the search react to what the test just settled. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Unhandled rejections seen while `action` runs (and shortly after). */
async function unhandledRejectionsDuring(action: () => Promise<unknown>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const record = (reason: unknown) => seen.push(reason);
  process.on('unhandledRejection', record);
  try {
    await action();
    await settle();
    await settle();
  } finally {
    process.off('unhandledRejection', record);
  }
  return seen;
}

describe('searchLearningRate with lookahead', () => {
  it('decides exactly as the sequential search for random losses, whatever order the trials finish in', async () => {
    const random = seededRandom(20230115);
    const pick = <T>(options: readonly T[]): T => options[Math.floor(random() * options.length)] as T;
    // quarter steps make ties and medians exactly at best + threshold common
    const losses = [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5];
    for (let example = 0; example < 400; example++) {
      const reps = pick([1, 1, 2, 3]);
      const table = Array.from({ length: 12 }, (_, n) =>
        Array.from({ length: reps }, () => {
          const u = random();
          if (n >= 10 || u < 0.04) return NaN; // n >= 10: every search ends
          if (u < 0.06) return Infinity;
          if (u < 0.07) return -Infinity;
          return pick(losses);
        }),
      );
      const settings: LrSearchSettings = {
        start: 1,
        step: 2,
        threshold: pick([0, 0.25, 0.5, 1]),
        reps,
        maxTrials: pick([null, null, 1, 2, 3, 5]),
        parallelReps: random() < 0.5,
      };
      const runWith = async (lookahead: number) => {
        const order = seededRandom(example * 10 + lookahead);
        const started: number[] = [];
        let inFlight = new Set<number>();
        let peakLrsInFlight = 0;
        const running = new Map<number, number>();
        const run: LrTrialRunner = async (lr, rep, { signal }) => {
          started.push(lr);
          running.set(lr, (running.get(lr) ?? 0) + 1);
          inFlight = new Set([...running].filter(([, count]) => count > 0).map(([inFlightLr]) => inFlightLr));
          peakLrsInFlight = Math.max(peakLrsInFlight, inFlight.size);
          const ticks = Math.floor(order() * 20);
          for (let tick = 0; tick < ticks; tick++) await null;
          running.set(lr, (running.get(lr) as number) - 1);
          // a dropped trial may give up with an error or answer nonsense; neither may count
          if (signal.aborted) {
            if (order() < 0.5) throw new Error('dropped');
            return -1e9;
          }
          return table[Math.log2(lr)]?.[rep] as number;
        };
        const result = await searchLearningRate({ ...settings, lookahead }, run);
        return { result, started: [...new Set(started)], peakLrsInFlight };
      };
      const sequential = await runWith(1);
      const context = JSON.stringify({ example, settings, table: table.map((row) => row.map(String)) });
      expect(sequential.result.speculative, context).toEqual([]);
      expect(sequential.started, context).toEqual(sequential.result.trials.map((t) => t.lr));
      for (const lookahead of [2, 3, 4]) {
        const { result, started, peakLrsInFlight } = await runWith(lookahead);
        const { trials, bestLr, bestLoss, stoppedBy, speculative } = result;
        expect({ trials, bestLr, bestLoss, stoppedBy }, `${context} lookahead ${lookahead}`).toEqual({
          trials: sequential.result.trials,
          bestLr: sequential.result.bestLr,
          bestLoss: sequential.result.bestLoss,
          stoppedBy: sequential.result.stoppedBy,
        });
        expect([...trials.map((t) => t.lr), ...speculative], context).toEqual(started);
        expect(speculative.length).toBeLessThanOrEqual(lookahead - 1);
        expect(started.length).toBeLessThanOrEqual(settings.maxTrials ?? Infinity);
        expect(peakLrsInFlight).toBeLessThanOrEqual(lookahead);
      }
    }
  });

  it('keeps three lrs in flight, decides in order, and drops the ones it did not need', async () => {
    const { runs, run, find } = controllable();
    const search = searchLearningRate({ start: 1, step: 2, threshold: 0.1, reps: 1, lookahead: 3 }, run);
    await settle();
    expect(runs.map((r) => [r.lr, r.control.depth])).toEqual([
      [1, 0],
      [2, 1],
      [4, 2],
    ]);
    find(2).resolve(4); // finishes first, but the search still waits for lr 1
    await settle();
    expect(runs).toHaveLength(3);
    find(1).resolve(5);
    await settle();
    // lrs 1 and 2 are decided: the search waits for lr 4 and keeps two more started behind it
    expect(runs.slice(3).map((r) => [r.lr, r.control.depth])).toEqual([
      [8, 2],
      [16, 2],
    ]);
    const eight = find(8);
    const sixteen = find(16);
    eight.control.signal.addEventListener('abort', () => eight.reject(eight.control.signal.reason));
    sixteen.control.signal.addEventListener('abort', () => sixteen.resolve(0)); // better, but too late to count
    find(4).resolve(10); // > 4 + 0.1: the search stops at lr 4
    const result = await search;
    expect(result.trials.map((t) => t.lr)).toEqual([1, 2, 4]);
    expect(result).toMatchObject({ bestLr: 2, bestLoss: 4, stoppedBy: 'threshold', speculative: [8, 16] });
    expect(runs.filter((r) => r.control.signal.aborted).map((r) => r.lr)).toEqual([8, 16]);
  });

  it('settles only once the runner is done with the dropped lrs, and reports one that finished early', async () => {
    const { run, find } = controllable();
    let settled = false;
    const search = searchLearningRate({ start: 1, step: 2, threshold: 0.1, reps: 1, lookahead: 3 }, run).then((result) => {
      settled = true;
      return result;
    });
    await settle();
    find(2).resolve(1); // finished before the stop: still speculative, since the search did not need it
    find(1).resolve(NaN);
    await settle();
    expect(find(4).control.signal.aborted).toBe(true);
    expect(settled).toBe(false);
    find(4).resolve(3);
    const result = await search;
    expect(result).toMatchObject({ bestLr: 1, stoppedBy: 'nan', speculative: [2, 4] });
    expect(result.trials).toHaveLength(1);
  });

  it('never starts an lr beyond maxTrials', async () => {
    const { calls, run } = recorder((lr) => 1 / lr);
    const result = await searchLearningRate({ start: 1, step: 2, threshold: 0.1, reps: 2, maxTrials: 2, lookahead: 4 }, run);
    // the two lrs run side by side, each one rep after the other
    expect(calls).toEqual([[1, 0], [2, 0], [1, 1], [2, 1]]);
    expect(result).toMatchObject({ stoppedBy: 'max_trials', speculative: [] });
  });

  it('runs the reps of one lr one after another unless parallelReps, and starts none once the lr is dropped', async () => {
    const { runs, run, find } = controllable();
    const search = searchLearningRate({ start: 1, step: 2, threshold: 0.1, reps: 3, lookahead: 2 }, run);
    await settle();
    expect(runs.map((r) => [r.lr, r.rep])).toEqual([
      [1, 0],
      [2, 0],
    ]);
    find(2, 0).resolve(1);
    await settle();
    expect(runs.map((r) => [r.lr, r.rep, r.control.depth])).toEqual([
      [1, 0, 0],
      [2, 0, 1],
      [2, 1, 1],
    ]);
    find(1, 0).resolve(NaN); // the median is NaN whatever the other reps give
    find(2, 1).control.signal.addEventListener('abort', () => find(2, 1).resolve(1));
    await settle();
    find(1, 1).resolve(1);
    await settle();
    find(1, 2).resolve(1);
    const result = await search;
    expect(result).toMatchObject({ stoppedBy: 'nan', speculative: [2] });
    expect(runs.filter((r) => r.lr === 2).map((r) => r.rep)).toEqual([0, 1]);
  });

  it('ignores a dropped lr that fails, with no unhandled rejection', async () => {
    let result: LrSearchResult | undefined;
    const unhandled = await unhandledRejectionsDuring(async () => {
      const run: LrTrialRunner = async (lr) => {
        if (lr === 4) throw new Error('lr 4 blew up'); // fails long before the search could need it
        if (lr === 8) throw new Error('lr 8 blew up at once');
        await settle();
        return lr === 1 ? 1 : 5; // lr 2 ends the search
      };
      result = await searchLearningRate({ start: 1, step: 2, threshold: 0.1, reps: 2, parallelReps: true, lookahead: 4 }, run);
    });
    expect(unhandled).toEqual([]);
    // lr 16 started when lr 1 was decided
    expect(result).toMatchObject({ bestLr: 1, stoppedBy: 'threshold', speculative: [4, 8, 16] });
  });

  it('passes on the error of an lr the search needs, and drops the ones after it', async () => {
    const { runs, run, find } = controllable();
    const search = searchLearningRate({ start: 1, step: 2, threshold: 0.1, reps: 1, lookahead: 3 }, run);
    await settle();
    for (const r of runs) r.control.signal.addEventListener('abort', () => r.reject(new Error('dropped')));
    find(1).resolve(3);
    await settle();
    for (const r of runs.slice(3)) r.control.signal.addEventListener('abort', () => r.reject(new Error('dropped')));
    find(2).reject(new Error('lr 2 crashed'));
    await expect(search).rejects.toThrow('lr 2 crashed');
    expect(runs.map((r) => [r.lr, r.control.signal.aborted])).toEqual([
      [1, false],
      [2, true],
      [4, true],
      [8, true],
    ]);
  });

  it('throws the error of a speculative lr that failed early once the search needs it, as the sequential search would', async () => {
    const unhandled = await unhandledRejectionsDuring(async () => {
      const run: LrTrialRunner = async (lr) => {
        if (lr === 4) throw new Error('lr 4 crashed');
        await settle();
        return 10 - lr;
      };
      const settings = { start: 1, step: 2, threshold: 0.1, reps: 1 };
      await expect(searchLearningRate({ ...settings, lookahead: 3 }, run)).rejects.toThrow('lr 4 crashed');
      await expect(searchLearningRate(settings, run)).rejects.toThrow('lr 4 crashed');
    });
    expect(unhandled).toEqual([]);
  });

  it('rejects a lookahead that is not a positive integer', async () => {
    const run: LrTrialRunner = async () => 1;
    for (const lookahead of [0, -1, 1.5, NaN])
      await expect(searchLearningRate({ start: 1, step: 2, threshold: 0.1, reps: 1, lookahead }, run)).rejects.toThrow(RangeError);
    await expect(searchLearningRate({ start: 1, step: 2, threshold: 0.1, reps: 1, lookahead: 0 }, run)).rejects.toThrow(/lookahead/);
  });
});

describe('lr_search.lookahead in sweep files', () => {
  function sweepFile(body: string): string {
    return join(writeFiles({ 'mine.yaml': body }), 'mine.yaml');
  }

  it('reaches the plan, 1 unless set; sweep-reduced looks three lrs ahead', () => {
    const lrSearch = (body: string) => planSweep(loadSweep(sweepFile(`base: charlm-quick\n${body}`))).configurations[0]?.lrSearch;
    expect(lrSearch('lr_search: { start: 2^-8, step: 2, threshold: 0.1, reps: 1 }\n')?.lookahead).toBe(1);
    expect(lrSearch('lr_search: { start: 2^-8, step: 2, threshold: 0.1, reps: 1, lookahead: "2^2" }\n')?.lookahead).toBe(4);
    for (const { lrSearch: settings } of planSweep(loadSweep('sweep-reduced')).configurations) expect(settings.lookahead).toBe(3);
    for (const { lrSearch: settings } of planSweep(loadSweep('sweep-paper')).configurations) expect(settings.lookahead).toBe(1);
  });

  it('rejects a lookahead that is not a positive integer, and still rejects unknown keys', () => {
    const zero = sweepFile('base: charlm-quick\nlr_search: { start: 2^-8, step: 2, threshold: 0.1, reps: 1, lookahead: 0 }\n');
    expect(reproErrorOf(() => loadSweep(zero))).toMatch(/mine\.yaml: lr_search\.lookahead: /);
    const half = sweepFile('base: charlm-quick\nlr_search: { start: 2^-8, step: 2, threshold: 0.1, reps: 1, lookahead: 1.5 }\n');
    expect(reproErrorOf(() => loadSweep(half))).toMatch(/mine\.yaml: lr_search\.lookahead: /);
    const typo = sweepFile('base: charlm-quick\nlr_search: { start: 2^-8, step: 2, threshold: 0.1, reps: 1, look_ahead: 3 }\n');
    expect(reproErrorOf(() => loadSweep(typo))).toMatch(
      /mine\.yaml: lr_search\.look_ahead: unknown key; expected one of .*\|lookahead$/,
    );
  });
});
