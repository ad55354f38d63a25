import type { ExperimentConfig } from '../config/schema.ts';
import type { Split } from '../data/charlm.ts';
import type { CellValue } from '../results/csv.ts';
import { charLmConfigColumns } from '../results/columns.ts';
import { bitsPerCharacter } from './evaluate.ts';

/** How a run ended, as the results CSV records it. */
export type RunStatus = 'ok' | 'diverged' | 'failed';

export interface RowFacts {
  readonly runId: string;
  readonly config: ExperimentConfig;
  readonly status: RunStatus;
  /** final mean nats per character (NaN unless ok) */
  readonly loss: Record<Split, number>;
  readonly stepsDone: number;
  readonly seconds: number;
  readonly device: string;
  readonly gitCommit: string;
}

/** BPC as written to the CSV: 6 decimals (a diverged run's NaN stays NaN). */
export function roundedBpc(nats: number): number {
  return Number(bitsPerCharacter(nats).toFixed(6));
}

/** One results row, in the column order of CHARLM_RESULT_COLUMNS, then any extra columns. */
export function resultRow(facts: RowFacts, extra: Record<string, CellValue> = {}): Record<string, CellValue> {
  const { config, loss } = facts;
  return {
    run_id: facts.runId,
    experiment: config.name,
    ...charLmConfigColumns(config),
    train_bpc: roundedBpc(loss.train),
    valid_bpc: roundedBpc(loss.valid),
    test_bpc: roundedBpc(loss.test),
    status: facts.status,
    steps_done: facts.stepsDone,
    wall_s: Number(facts.seconds.toFixed(1)),
    device: facts.device,
    seed: config.seed,
    git_commit: facts.gitCommit,
    ...extra,
  };
}
