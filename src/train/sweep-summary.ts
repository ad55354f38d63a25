import { median, type LrSearchResult } from './lr-search.ts';
import type { SweepConfiguration } from './sweep-plan.ts';
import type { TrialResult } from './trial.ts';

export interface TrialRecord extends TrialResult {
  readonly lr: number;
  readonly rep: number;
}

export interface ConfigurationOutcome {
  readonly configuration: SweepConfiguration;
  readonly search: LrSearchResult;
  readonly trials: readonly TrialRecord[];
}

/** One line of the summary CSV, shaped like §A9's table: the best lr and its medians. */
export type SummaryRow = Record<string, string | number>;

/** The lr as people write it: 2^k when it is a power of two. */
export function lrLabel(lr: number): string {
  const exponent = Math.log2(lr);
  return Number.isInteger(exponent) ? `2^${exponent}` : String(lr);
}

/**
 * Per configuration: the lr the §A7 search chose, the median final valid and test BPC of its
 * repetitions, how many lrs were tried and why the search stopped.
 */
export function summariseSweep(outcomes: readonly ConfigurationOutcome[]): SummaryRow[] {
  return outcomes.map(({ configuration, search, trials }) => {
    const best = trials.filter((t) => t.lr === search.bestLr);
    const axes = Object.fromEntries(Object.entries(configuration.axes).map(([key, value]) => [key, String(value)]));
    return {
      configuration: configuration.id,
      ...axes,
      best_lr: search.bestLr,
      best_lr_log2: Number(Math.log2(search.bestLr).toFixed(3)),
      valid_bpc: median(best.map((t) => t.validBpc)),
      test_bpc: median(best.map((t) => t.testBpc)),
      reps: best.length,
      lrs_tried: search.trials.length,
      stopped_by: search.stoppedBy,
    };
  });
}
