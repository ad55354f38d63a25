import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import Papa from 'papaparse';
import { ReproError } from '../errors.ts';

export type CellValue = string | number | boolean | null | undefined;

/** A results CSV: its columns in file order and every row as strings ("" for an empty cell). */
export interface ResultsTable {
  columns: string[];
  rows: Record<string, string>[];
}

export function formatCell(value: CellValue): string {
  if (value === null || value === undefined) return '';
  return String(value);
}

/** Reads a results CSV; a missing file is an error, an empty file an empty table. */
export function readResults(file: string): ResultsTable {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ReproError(`${file}: ${code === 'ENOENT' ? 'results file not found' : `cannot read (${code ?? String(err)})`}`);
  }
  return parseResults(text, file);
}

export function parseResults(text: string, where: string): ResultsTable {
  if (text.trim() === '') return { columns: [], rows: [] };
  const parsed = Papa.parse<Record<string, string>>(text, { header: true, skipEmptyLines: true, delimiter: ',' });
  const error = parsed.errors[0];
  if (error) {
    const row = error.row === undefined ? '' : ` row ${error.row + 2}:`;
    throw new ReproError(`${where}:${row} invalid CSV: ${error.message}`);
  }
  const columns = parsed.meta.fields ?? [];
  const rows = parsed.data.map((row) => Object.fromEntries(columns.map((c) => [c, row[c] ?? ''])));
  return { columns, rows };
}

export function formatResults(table: ResultsTable): string {
  if (table.columns.length === 0) return '';
  const data = table.rows.map((row) => table.columns.map((c) => row[c] ?? ''));
  return `${Papa.unparse({ fields: table.columns, data }, { newline: '\n' })}\n`;
}

/** Writes the whole table to a temporary file beside `file`, then renames it over `file`. */
export function writeResults(file: string, table: ResultsTable): void {
  mkdirSync(dirname(file) || '.', { recursive: true });
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    writeFileSync(tmp, formatResults(table));
    renameSync(tmp, file);
  } catch (err) {
    if (existsSync(tmp)) unlinkSync(tmp);
    throw err;
  }
}

const LOCK_WAIT_MS = 30_000;
const LOCK_STALE_MS = 120_000;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Runs `action` holding `<file>.lock`, so that runs finishing at the same time (a sweep over
 * several GPUs) do not each read the old file and lose the other's row. A lock left by a crashed
 * process is taken over once it is older than LOCK_STALE_MS.
 */
function withFileLock<T>(file: string, action: () => T): T {
  const lock = `${file}.lock`;
  mkdirSync(dirname(lock) || '.', { recursive: true });
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx'));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let age = 0;
      try {
        age = Date.now() - statSync(lock).mtimeMs;
      } catch {
        continue; // released between our open and stat
      }
      if (age > LOCK_STALE_MS) {
        try {
          unlinkSync(lock);
        } catch {
          // another waiter removed it first
        }
        continue;
      }
      if (Date.now() > deadline) throw new ReproError(`${file}: locked by another process (remove ${lock} if none is running)`);
      sleepSync(25);
    }
  }
  try {
    return action();
  } finally {
    unlinkSync(lock);
  }
}

/**
 * Appends one row. New columns are added at the end (earlier rows get empty cells there); columns
 * the row lacks are left empty. The file is replaced atomically.
 */
export function appendResultRow(file: string, row: Record<string, CellValue>): void {
  withFileLock(file, () => {
    const table = existsSync(file) ? readResults(file) : { columns: [], rows: [] };
    const columns = [...table.columns, ...Object.keys(row).filter((c) => !table.columns.includes(c))];
    const cells = Object.fromEntries(columns.map((c) => [c, formatCell(row[c])]));
    const rows = table.rows.map((old) => Object.fromEntries(columns.map((c) => [c, old[c] ?? ''])));
    writeResults(file, { columns, rows: [...rows, cells] });
  });
}
