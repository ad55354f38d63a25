import { ReproError } from '../errors.ts';
import {
  BERT_KEY_COLUMNS,
  bestCharLmRuns,
  keyOf,
  meanBertScores,
  normaliseKeyCell,
  type BestCharLmRun,
} from './aggregate.ts';
import { CHARLM_CONFIG_COLUMNS } from './columns.ts';
import type { ResultsTable } from './csv.ts';
import { PAPER_BERT_SQUAD, PAPER_CHARLM_CI95, PAPER_CHARLM_TEST_BPC } from './paper-tables.ts';
import { formatTextTable } from './text-table.ts';

export const PAPER_TABLES = ['paper-charlm', 'paper-bert'] as const;
export type PaperTable = (typeof PAPER_TABLES)[number];

export type ValueFormat = 'bpc' | 'score' | 'lr';

export interface ValueColumn {
  column: string;
  format: ValueFormat;
  /** 'a': only the first side has it (the paper does not report it); 'both': both sides */
  sides: 'a' | 'both';
  /** print a − b */
  diff: boolean;
}

type Values = Record<string, number | undefined>;

export interface ComparisonRow {
  key: Record<string, string>;
  a: Values;
  b: Values;
}

export interface Comparison {
  /** key columns whose value differs between rows (printed as columns) */
  keyColumns: string[];
  /** key columns with one value in every row (printed once above the table) */
  common: Record<string, string>;
  valueColumns: ValueColumn[];
  labels: [string, string];
  rows: ComparisonRow[];
  note: string;
}

/** Which paper table a results file belongs with: BERT rows carry SQuAD scores. */
export function resultsKind(table: ResultsTable): 'charlm' | 'bert' {
  return table.columns.includes('em') || table.columns.includes('squad_version') ? 'bert' : 'charlm';
}

function requireColumns(table: ResultsTable, columns: readonly string[], label: string, why: string): void {
  const missing = columns.filter((c) => !table.columns.includes(c));
  if (missing.length) throw new ReproError(`${label}: no column ${missing.join(', ')} (${why})`);
}

function splitConstant(
  rows: readonly ComparisonRow[],
  columns: readonly string[],
  alwaysShown: readonly string[] = [],
): Pick<Comparison, 'keyColumns' | 'common'> {
  const common: Record<string, string> = {};
  const keyColumns = columns.filter((c) => {
    // Empty cells are rows of the other side that lack the column (paper rows), not a value.
    const values = new Set(rows.map((row) => row.key[c] ?? '').filter((v) => v !== ''));
    if (alwaysShown.includes(c) || values.size > 1) return true;
    if (values.size === 1) common[c] = [...values][0] as string;
    return false;
  });
  return { keyColumns, common };
}

/** Rows of both sides joined on the whole key: the first side's order, then rows only the second has. */
function outerJoin(
  first: readonly { key: Record<string, string>; values: Values }[],
  second: readonly { key: Record<string, string>; values: Values }[],
  columns: readonly string[],
  firstIsA: boolean,
): ComparisonRow[] {
  const seconds = new Map(second.map((item) => [keyOf(item.key, columns), item]));
  const rows: ComparisonRow[] = first.map((item) => {
    const other = seconds.get(keyOf(item.key, columns));
    seconds.delete(keyOf(item.key, columns));
    const otherValues = other?.values ?? {};
    return { key: item.key, a: firstIsA ? item.values : otherValues, b: firstIsA ? otherValues : item.values };
  });
  for (const item of seconds.values())
    rows.push({ key: item.key, a: firstIsA ? {} : item.values, b: firstIsA ? item.values : {} });
  return rows;
}

const charLmValues = (run: BestCharLmRun): Values => ({ lr: run.lr, valid_bpc: run.valid_bpc, test_bpc: run.test_bpc });

function configColumnsOf(table: ResultsTable): string[] {
  return CHARLM_CONFIG_COLUMNS.filter((c) => c !== 'lr' && table.columns.includes(c));
}

function compareCharLmFiles(a: ResultsTable, b: ResultsTable, labels: [string, string]): Comparison {
  for (const [table, label] of [
    [a, labels[0]],
    [b, labels[1]],
  ] as const)
    requireColumns(table, ['valid_bpc'], label, 'char-LM results need the final valid BPC');
  const columns = configColumnsOf(a).filter((c) => b.columns.includes(c));
  const side = (table: ResultsTable) => bestCharLmRuns(table, columns).map((run) => ({ key: run.key, values: charLmValues(run) }));
  const rows = outerJoin(side(a), side(b), columns, true);
  return {
    ...splitConstant(rows, columns),
    valueColumns: [
      { column: 'lr', format: 'lr', sides: 'both', diff: false },
      { column: 'valid_bpc', format: 'bpc', sides: 'both', diff: true },
      { column: 'test_bpc', format: 'bpc', sides: 'both', diff: true },
    ],
    labels,
    rows,
    note: 'each side: per configuration, the lr with the lowest median valid BPC and its median BPCs (paper §A9 rule)',
  };
}

const PAPER_CHARLM_KEY = ['mixer', 'norm', 'precision', 'scaling', 'loss_scale'] as const;

function compareCharLmPaper(a: ResultsTable, labels: [string, string]): Comparison {
  requireColumns(a, [...PAPER_CHARLM_KEY, 'valid_bpc'], labels[0], "needed to match the paper's char-LM table");
  const columns = configColumnsOf(a);
  const ours = bestCharLmRuns(a, columns);
  const matched = new Set<BestCharLmRun>();
  const rows: ComparisonRow[] = PAPER_CHARLM_TEST_BPC.flatMap((paper) => {
    const key = Object.fromEntries(PAPER_CHARLM_KEY.map((c) => [c, normaliseKeyCell(String(paper[c]))]));
    const runs = ours.filter((run) => PAPER_CHARLM_KEY.every((c) => run.key[c] === key[c]));
    runs.forEach((run) => matched.add(run));
    const b = { test_bpc: paper.test_bpc };
    return runs.length ? runs.map((run) => ({ key: run.key, a: charLmValues(run), b })) : [{ key, a: {}, b }];
  });
  for (const run of ours) if (!matched.has(run)) rows.push({ key: run.key, a: charLmValues(run), b: {} });
  return {
    ...splitConstant(rows, columns, PAPER_CHARLM_KEY),
    valueColumns: [
      { column: 'lr', format: 'lr', sides: 'a', diff: false },
      { column: 'valid_bpc', format: 'bpc', sides: 'a', diff: false },
      { column: 'test_bpc', format: 'bpc', sides: 'both', diff: true },
    ],
    labels,
    rows,
    note:
      `paper: median test BPC at the lr with the lowest median valid BPC (spec §A9), 95% CI ±${PAPER_CHARLM_CI95.toFixed(3)}; ` +
      `${labels[0]}: the same rule over its runs`,
  };
}

const bertValues = (score: { em: number | undefined; f1: number | undefined }): Values => ({ em: score.em, f1: score.f1 });

function compareBert(a: ResultsTable, b: ResultsTable | 'paper', labels: [string, string]): Comparison {
  const why = 'BERT results need model_size, precision, squad_version and scaling or method';
  requireColumns(a, ['model_size', 'precision', 'squad_version'], labels[0], why);
  const ours = meanBertScores(a).map((score) => ({ key: score.key, values: bertValues(score) }));
  let rows: ComparisonRow[];
  if (b === 'paper') {
    const paper = PAPER_BERT_SQUAD.map((row) => ({
      key: Object.fromEntries(BERT_KEY_COLUMNS.map((c) => [c, normaliseKeyCell(row[c])])),
      values: bertValues(row),
    }));
    rows = outerJoin(paper, ours, BERT_KEY_COLUMNS, false);
  } else {
    requireColumns(b, ['model_size', 'precision', 'squad_version'], labels[1], why);
    const theirs = meanBertScores(b).map((score) => ({ key: score.key, values: bertValues(score) }));
    rows = outerJoin(ours, theirs, BERT_KEY_COLUMNS, true);
  }
  return {
    ...splitConstant(rows, BERT_KEY_COLUMNS, BERT_KEY_COLUMNS),
    valueColumns: [
      { column: 'em', format: 'score', sides: 'both', diff: true },
      { column: 'f1', format: 'score', sides: 'both', diff: true },
    ],
    labels,
    rows,
    note:
      b === 'paper'
        ? `paper: Table 3 (spec §B5), mean over fine-tunings and checkpoints; ${labels[0]}: mean over its runs`
        : 'each side: mean EM/F1 over runs',
  };
}

/**
 * Joins two results files (or one and a table of the paper) on their configuration columns.
 * Char-LM results are reduced per configuration with the paper's rule first (best lr by median
 * valid BPC); BERT results are averaged per (model size, method, precision, SQuAD version).
 */
export function compareResults(
  a: ResultsTable,
  b: ResultsTable | PaperTable,
  labels: [string, string] = ['a', 'b'],
): Comparison {
  if (b === 'paper-charlm') return compareCharLmPaper(a, labels);
  if (b === 'paper-bert') return compareBert(a, 'paper', labels);
  if (resultsKind(a) !== resultsKind(b))
    throw new ReproError(`${labels[0]} holds ${resultsKind(a)} results but ${labels[1]} holds ${resultsKind(b)} results`);
  return resultsKind(a) === 'bert' ? compareBert(a, b, labels) : compareCharLmFiles(a, b, labels);
}

function formatValue(value: number | undefined, format: ValueFormat, signed = false): string {
  if (value === undefined) return '—';
  if (Number.isNaN(value)) return 'NaN';
  if (format === 'lr') {
    const exponent = Math.log2(value);
    return Number.isInteger(exponent) ? `2^${exponent}` : value.toPrecision(4);
  }
  const text = value.toFixed(format === 'bpc' ? 3 : 2);
  return signed && value >= 0 ? `+${text}` : text;
}

/** The comparison as text: common settings, the table, and how the values were obtained. */
export function formatComparison(comparison: Comparison): string {
  const [labelA, labelB] = comparison.labels;
  const headers = [...comparison.keyColumns];
  for (const v of comparison.valueColumns) {
    if (v.sides === 'a') headers.push(`${v.column} ${labelA}`);
    else headers.push(`${v.column} ${labelA}`, `${v.column} ${labelB}`);
    if (v.diff) headers.push('diff');
  }
  const body = comparison.rows.map((row) => {
    const cells = comparison.keyColumns.map((c) => row.key[c] || '—');
    for (const v of comparison.valueColumns) {
      const a = row.a[v.column];
      const b = row.b[v.column];
      cells.push(formatValue(a, v.format));
      if (v.sides === 'both') cells.push(formatValue(b, v.format));
      if (v.diff) cells.push(a === undefined || b === undefined ? '—' : formatValue(a - b, v.format, true));
    }
    return cells;
  });
  const common = Object.entries(comparison.common).map(([k, v]) => `${k}=${v}`);
  return [
    ...(common.length ? [`common: ${common.join(' ')}`] : []),
    formatTextTable(headers, body),
    `diff = ${labelA} − ${labelB}. ${comparison.note}`,
  ].join('\n');
}
