/**
 * The paper's learning-rate search ("LrSweep", shared/spec/experiments.md §A7): try lr_0·step^n for
 * n = 0, 1, 2, … with `reps` runs each, keep the lr whose median final valid loss is lowest, and
 * stop at the first NaN median or the first median worse than best + threshold.
 *
 * With `lookahead` L > 1 the search speculates: while it waits for trial n it keeps trials
 * n+1 … n+L−1 running too (never beyond `maxTrials`), so that a pool with free slots can run
 * them side by side. It still decides strictly in order of n with the same rule, so `trials`,
 * `bestLr`, `bestLoss` and `stoppedBy` are those of the sequential search for any losses; once it
 * stops, the trials it started beyond the stopping one are aborted through their signal, their
 * results ignored and their lrs reported in `speculative`. The search settles only after every
 * runner call it made has settled, so none of the runner's work outlives it.
 */

export interface LrSearchSettings {
  start: number;
  /** multiplier between trials; > 1 (the search only moves upwards) */
  step: number;
  /** in nats of final valid loss */
  threshold: number;
  reps: number;
  /** stop after this many lrs even if the rule has not stopped (null: no cap, as in the paper) */
  maxTrials?: number | null;
  /** run the reps of one lr concurrently (e.g. one per GPU); otherwise one after another */
  parallelReps?: boolean;
  /**
   * how many lrs to keep started at once: the one the search needs next and L−1 speculative ones
   * after it (1, the default: one lr at a time). Does not change the result, only its cost.
   */
  lookahead?: number;
}

export interface LrTrial {
  lr: number;
  /** final valid loss of each rep, in rep order */
  losses: number[];
  /** median of `losses`; NaN if any rep is NaN */
  median: number;
}

export type LrSearchStop = 'nan' | 'threshold' | 'max_trials';

export interface LrSearchResult {
  /** lr with the lowest median (the first lr if its median was NaN) */
  bestLr: number;
  bestLoss: number;
  /** the lrs the search needed, in order: exactly those of a search with lookahead 1 */
  trials: LrTrial[];
  stoppedBy: LrSearchStop;
  /** lrs started speculatively but not needed (aborted, or finished after the stop), in order */
  speculative: number[];
}

export interface LrTrialControl {
  /** aborts once the search no longer needs this trial; its result is then ignored */
  signal: AbortSignal;
  /**
   * how many trials ahead of the one the search was waiting for this run was when it started
   * (0: the search needs it next); a scheduling priority, lower is more urgent
   */
  depth: number;
}

/** Final valid loss of one training run at `lr`; `rep` numbers the independent repetitions. */
export type LrTrialRunner = (lr: number, rep: number, control: LrTrialControl) => Promise<number>;

/** numpy's median: mean of the two middle values for an even count, NaN if any value is NaN. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  if (values.some(Number.isNaN)) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function checkSettings(settings: LrSearchSettings): void {
  const { start, step, threshold, reps, maxTrials, lookahead } = settings;
  if (!(start > 0) || !Number.isFinite(start)) throw new RangeError(`lr search: start must be a positive number, got ${start}`);
  if (!(step > 1) || !Number.isFinite(step)) throw new RangeError(`lr search: step must be > 1, got ${step}`);
  if (!(threshold >= 0)) throw new RangeError(`lr search: threshold must be >= 0, got ${threshold}`);
  if (!Number.isInteger(reps) || reps < 1) throw new RangeError(`lr search: reps must be a positive integer, got ${reps}`);
  if (maxTrials !== undefined && maxTrials !== null && (!Number.isInteger(maxTrials) || maxTrials < 1))
    throw new RangeError(`lr search: maxTrials must be a positive integer or null, got ${maxTrials}`);
  if (lookahead !== undefined && (!Number.isInteger(lookahead) || lookahead < 1))
    throw new RangeError(`lr search: lookahead must be a positive integer, got ${lookahead}`);
}

/** One lr whose reps have been started. */
interface StartedTrial {
  lr: number;
  controller: AbortController;
  /** every rep's loss in rep order; rejects as soon as a rep rejects */
  losses: Promise<number[]>;
  /** resolves (never rejects) once every runner call made for this lr has settled */
  settled: Promise<void>;
}

const ignore = (): void => {};

/** Calls the runner so that a synchronous throw becomes a rejection like an asynchronous one. */
function callRunner(run: LrTrialRunner, lr: number, rep: number, control: LrTrialControl): Promise<number> {
  return new Promise<number>((resolve) => resolve(run(lr, rep, control)));
}

function startTrial(
  lr: number,
  settings: LrSearchSettings,
  run: LrTrialRunner,
  depthNow: () => number,
): StartedTrial {
  const controller = new AbortController();
  const { signal } = controller;
  const reps = Array.from({ length: settings.reps }, (_, rep) => rep);
  let losses: Promise<number[]>;
  let settled: Promise<void>;
  if (settings.parallelReps) {
    const depth = depthNow();
    const runs = reps.map((rep) => callRunner(run, lr, rep, { signal, depth }));
    losses = Promise.all(runs);
    settled = Promise.allSettled(runs).then(ignore);
  } else {
    losses = (async () => {
      const values: number[] = [];
      for (const rep of reps) {
        // an lr dropped between two reps starts no further rep
        signal.throwIfAborted();
        values.push(await callRunner(run, lr, rep, { signal, depth: depthNow() }));
      }
      return values;
    })();
    // the loop awaits each call, so once it has settled every call it made has settled
    settled = losses.then(ignore, ignore);
  }
  // A speculative lr may fail before (or without) the search ever awaiting it; this handler keeps
  // that from being reported as an unhandled rejection, while `await losses` still throws.
  losses.catch(ignore);
  return { lr, controller, losses, settled };
}

/** Aborts `trials` and waits until the runner has finished with every one of them. */
async function dropTrials(trials: readonly StartedTrial[]): Promise<void> {
  for (const trial of trials) trial.controller.abort();
  await Promise.all(trials.map((trial) => trial.settled));
}

export async function searchLearningRate(settings: LrSearchSettings, run: LrTrialRunner): Promise<LrSearchResult> {
  checkSettings(settings);
  const lookahead = settings.lookahead ?? 1;
  const trialCap = settings.maxTrials ?? Infinity;
  const started: StartedTrial[] = [];
  const trials: LrTrial[] = [];
  let best: LrTrial | undefined;
  /** index of the lr the search is waiting for */
  let needed = 0;
  try {
    for (; ; needed++) {
      while (started.length < Math.min(needed + lookahead, trialCap)) {
        const index = started.length;
        const lr = settings.start * settings.step ** index;
        started.push(startTrial(lr, settings, run, () => index - needed));
      }
      const { lr, losses: pending } = started[needed] as StartedTrial;
      const losses = await pending;
      const trial: LrTrial = { lr, losses, median: median(losses) };
      trials.push(trial);
      // The first trial is always the best so far, even if its median is NaN or infinite.
      if (best === undefined || trial.median < best.median) best = trial;
      const stoppedBy: LrSearchStop | undefined = Number.isNaN(trial.median)
        ? 'nan'
        : trial.median > best.median + settings.threshold
          ? 'threshold'
          : settings.maxTrials != null && trials.length >= settings.maxTrials
            ? 'max_trials'
            : undefined;
      if (stoppedBy) {
        const unneeded = started.slice(needed + 1);
        await dropTrials(unneeded);
        return { bestLr: best.lr, bestLoss: best.median, trials, stoppedBy, speculative: unneeded.map((t) => t.lr) };
      }
    }
  } catch (error) {
    // The needed lr failed: nothing started from it on is needed any more, its own other reps
    // included. The error is the one the sequential search would have thrown.
    await dropTrials(started.slice(needed));
    throw error;
  }
}
