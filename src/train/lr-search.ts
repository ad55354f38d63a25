/**
 * The paper's learning-rate search ("LrSweep", shared/spec/experiments.md §A7): try lr_0·step^n for
 * n = 0, 1, 2, … with `reps` runs each, keep the lr whose median final valid loss is lowest, and
 * stop at the first NaN median or the first median worse than best + threshold.
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
  trials: LrTrial[];
  stoppedBy: LrSearchStop;
}

/** Final valid loss of one training run at `lr`; `rep` numbers the independent repetitions. */
export type LrTrialRunner = (lr: number, rep: number) => Promise<number>;

/** numpy's median: mean of the two middle values for an even count, NaN if any value is NaN. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  if (values.some(Number.isNaN)) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function checkSettings(settings: LrSearchSettings): void {
  const { start, step, threshold, reps, maxTrials } = settings;
  if (!(start > 0) || !Number.isFinite(start)) throw new RangeError(`lr search: start must be a positive number, got ${start}`);
  if (!(step > 1) || !Number.isFinite(step)) throw new RangeError(`lr search: step must be > 1, got ${step}`);
  if (!(threshold >= 0)) throw new RangeError(`lr search: threshold must be >= 0, got ${threshold}`);
  if (!Number.isInteger(reps) || reps < 1) throw new RangeError(`lr search: reps must be a positive integer, got ${reps}`);
  if (maxTrials !== undefined && maxTrials !== null && (!Number.isInteger(maxTrials) || maxTrials < 1))
    throw new RangeError(`lr search: maxTrials must be a positive integer or null, got ${maxTrials}`);
}

async function runReps(lr: number, settings: LrSearchSettings, run: LrTrialRunner): Promise<number[]> {
  const reps = Array.from({ length: settings.reps }, (_, rep) => rep);
  if (settings.parallelReps) return Promise.all(reps.map((rep) => run(lr, rep)));
  const losses: number[] = [];
  for (const rep of reps) losses.push(await run(lr, rep));
  return losses;
}

export async function searchLearningRate(settings: LrSearchSettings, run: LrTrialRunner): Promise<LrSearchResult> {
  checkSettings(settings);
  const trials: LrTrial[] = [];
  let best: LrTrial | undefined;
  for (let n = 0; ; n++) {
    const lr = settings.start * settings.step ** n;
    const losses = await runReps(lr, settings, run);
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
    if (stoppedBy) return { bestLr: best.lr, bestLoss: best.median, trials, stoppedBy };
  }
}
