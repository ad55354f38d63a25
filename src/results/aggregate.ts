import { median } from '../train/lr-search.ts';
import type { ResultsTable } from './csv.ts';

/** A cell as a number: undefined when empty or not numeric, NaN when the run diverged ("NaN"). */
export function numericCell(cell: string | undefined): number | undefined {
  const text = (cell ?? '').trim();
  if (text === '') return undefined;
  if (/^[+-]?nan$/i.test(text)) return NaN;
  const value = Number(text);
  return Number.isNaN(value) ? undefined : value;
}

/** Key cells are compared as numbers where they are numbers, so "2048" and "2048.0" join. */
export function normaliseKeyCell(cell: string | undefined): string {
  const text = (cell ?? '').trim();
  const value = numericCell(text);
  return value === undefined || Number.isNaN(value) ? text : String(value);
}

export function keyOf(key: Record<string, string>, columns: readonly string[]): string {
  return JSON.stringify(columns.map((c) => key[c] ?? ''));
}

function groupBy<T>(items: readonly T[], keyFn: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyFn(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

export interface BestCharLmRun {
  key: Record<string, string>;
  /** the lr whose median final valid BPC is lowest */
  lr: number | undefined;
  /** median over that lr's runs */
  valid_bpc: number;
  test_bpc: number | undefined;
  /** runs at that lr */
  runs: number;
}

function medianOf(values: readonly (number | undefined)[]): number | undefined {
  const present = values.filter((v): v is number => v !== undefined);
  return present.length ? median(present) : undefined;
}

/**
 * The paper's table rule (§A9) per configuration: group runs by lr, take median valid and test
 * BPC over repetitions, keep the lr with the lowest median valid BPC. Runs without a final
 * valid BPC (unfinished) are ignored; a diverged run ("NaN") makes its lr's median NaN.
 */
export function bestCharLmRuns(table: ResultsTable, keyColumns: readonly string[]): BestCharLmRun[] {
  const finished = table.rows.filter((row) => numericCell(row['valid_bpc']) !== undefined);
  const configs = groupBy(finished, (row) => keyOf(normalisedKey(row, keyColumns), keyColumns));
  return [...configs.values()].map((rows) => {
    const byLr = [...groupBy(rows, (row) => normaliseKeyCell(row['lr'])).values()].map((runs) => ({
      lr: numericCell(runs[0]?.['lr']),
      valid: medianOf(runs.map((r) => numericCell(r['valid_bpc']))) as number,
      test: medianOf(runs.map((r) => numericCell(r['test_bpc']))),
      runs: runs.length,
    }));
    const best = byLr.reduce((a, b) => (Number.isNaN(a.valid) || b.valid < a.valid ? b : a));
    return {
      key: normalisedKey(rows[0] as Record<string, string>, keyColumns),
      lr: best.lr,
      valid_bpc: best.valid,
      test_bpc: best.test,
      runs: best.runs,
    };
  });
}

function normalisedKey(row: Record<string, string>, columns: readonly string[]): Record<string, string> {
  return Object.fromEntries(columns.map((c) => [c, normaliseKeyCell(row[c])]));
}

export interface MeanBertScore {
  key: Record<string, string>;
  em: number | undefined;
  f1: number | undefined;
  runs: number;
}

/** `method` as in the paper's table: given in the row, or derived from scaling and loss scale. */
export function bertMethod(row: Record<string, string>): string {
  const given = (row['method'] ?? '').trim().toLowerCase();
  if (given) return given;
  if (row['scaling'] === 'unit') return 'unit scaling';
  return (numericCell(row['loss_scale']) ?? 1) > 1 ? 'loss scaling' : 'no scaling';
}

export const BERT_KEY_COLUMNS = ['model_size', 'method', 'precision', 'squad_version'] as const;

/** Mean EM and F1 per (model size, method, precision, SQuAD version) over fine-tuning runs. */
export function meanBertScores(table: ResultsTable): MeanBertScore[] {
  const keyed = table.rows
    .filter((row) => numericCell(row['em']) !== undefined || numericCell(row['f1']) !== undefined)
    .map((row) => ({
      row,
      key: normalisedKey({ ...row, method: bertMethod(row) }, BERT_KEY_COLUMNS),
    }));
  const mean = (values: (number | undefined)[]) => {
    const present = values.filter((v): v is number => v !== undefined);
    return present.length ? present.reduce((s, v) => s + v, 0) / present.length : undefined;
  };
  return [...groupBy(keyed, (item) => keyOf(item.key, BERT_KEY_COLUMNS)).values()].map((items) => ({
    key: (items[0] as (typeof items)[number]).key,
    em: mean(items.map((i) => numericCell(i.row['em']))),
    f1: mean(items.map((i) => numericCell(i.row['f1']))),
    runs: items.length,
  }));
}
