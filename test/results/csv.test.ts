import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appendResultRow, readResults } from '../../src/results/csv.ts';
import { reproErrorOf } from '../config/helpers.ts';

function freshFile(): string {
  return join(mkdtempSync(join(tmpdir(), 'repro-results-')), 'runs.csv');
}

describe('appendResultRow / readResults', () => {
  it('creates the file with a header and appends rows', () => {
    const file = freshFile();
    appendResultRow(file, { run_id: 'a', lr: 0.5, valid_bpc: 1.25 });
    appendResultRow(file, { run_id: 'b', lr: 0.25, valid_bpc: 1.5 });
    expect(readFileSync(file, 'utf8')).toBe('run_id,lr,valid_bpc\na,0.5,1.25\nb,0.25,1.5\n');
    expect(readResults(file)).toEqual({
      columns: ['run_id', 'lr', 'valid_bpc'],
      rows: [
        { run_id: 'a', lr: '0.5', valid_bpc: '1.25' },
        { run_id: 'b', lr: '0.25', valid_bpc: '1.5' },
      ],
    });
  });

  it('appends new columns at the end and leaves old rows empty there', () => {
    const file = freshFile();
    appendResultRow(file, { run_id: 'a', valid_bpc: 1.5 });
    appendResultRow(file, { test_bpc: 1.6, run_id: 'b', status: 'done' });
    const table = readResults(file);
    expect(table.columns).toEqual(['run_id', 'valid_bpc', 'test_bpc', 'status']);
    expect(table.rows).toEqual([
      { run_id: 'a', valid_bpc: '1.5', test_bpc: '', status: '' },
      { run_id: 'b', valid_bpc: '', test_bpc: '1.6', status: 'done' },
    ]);
  });

  it('writes NaN, booleans, null and awkward text faithfully', () => {
    const file = freshFile();
    appendResultRow(file, { run_id: 'x', valid_bpc: NaN, ok: false, note: 'a, "quoted"\nline', empty: null, none: undefined });
    expect(readResults(file).rows[0]).toEqual({ run_id: 'x', valid_bpc: 'NaN', ok: 'false', note: 'a, "quoted"\nline', empty: '', none: '' });
  });

  it('leaves no temporary or lock files behind', () => {
    const file = freshFile();
    for (let i = 0; i < 3; i++) appendResultRow(file, { i });
    expect(readdirSync(join(file, '..'))).toEqual(['runs.csv']);
  });

  it('takes over a stale lock left by a crashed writer', () => {
    const file = freshFile();
    writeFileSync(`${file}.lock`, '');
    const old = new Date(Date.now() - 10 * 60_000);
    utimesSync(`${file}.lock`, old, old);
    appendResultRow(file, { run_id: 'after-crash' });
    expect(readResults(file).rows).toEqual([{ run_id: 'after-crash' }]);
  });

  it('loses no rows when several processes append at once', async () => {
    const file = freshFile();
    const script =
      "const { appendResultRow } = await import(process.env.CSV_MODULE);" +
      'for (let i = 0; i < 15; i++) appendResultRow(process.env.CSV_FILE, { writer: process.env.WRITER, i });';
    const writers = ['w0', 'w1', 'w2'].map(
      (writer) =>
        new Promise<number>((resolve, reject) => {
          const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
            env: { ...process.env, CSV_FILE: file, WRITER: writer, CSV_MODULE: new URL('../../src/results/csv.ts', import.meta.url).href },
            stdio: ['ignore', 'ignore', 'inherit'],
          });
          child.on('error', reject);
          child.on('exit', (code) => resolve(code ?? -1));
        }),
    );
    expect(await Promise.all(writers)).toEqual([0, 0, 0]);
    const rows = readResults(file).rows;
    expect(rows).toHaveLength(45);
    for (const writer of ['w0', 'w1', 'w2'])
      expect(rows.filter((r) => r['writer'] === writer).map((r) => Number(r['i']))).toEqual([...Array(15).keys()]);
  });

  it('reports a missing or corrupt file in one line', () => {
    expect(reproErrorOf(() => readResults('/nonexistent/runs.csv'))).toBe('/nonexistent/runs.csv: results file not found');
    const file = freshFile();
    writeFileSync(file, 'a,b\n1,2\n3,"unterminated\n');
    expect(reproErrorOf(() => readResults(file))).toMatch(/runs\.csv: row \d+: invalid CSV: /);
  });

  it('reads an empty file as an empty table', () => {
    const file = freshFile();
    writeFileSync(file, '');
    expect(readResults(file)).toEqual({ columns: [], rows: [] });
  });
});
