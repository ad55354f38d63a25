import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { appendResultRow } from '../../src/results/csv.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('repro compare', () => {
  it('prints a results file against the paper table, and reports a missing file in one line', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'repro-compare-')), 'runs.csv');
    const config = { mixer: 'conv', depth: 8, norm: 'pre', scaling: 'unit', precision: 'fp16', loss_scale: 1 };
    appendResultRow(file, { run_id: 'r1', ...config, lr: 2 ** -6, valid_bpc: 1.7, test_bpc: 1.65, status: 'done' });
    appendResultRow(file, { run_id: 'r2', ...config, lr: 2 ** -5, valid_bpc: 1.8, test_bpc: 1.6, status: 'done' });
    const ok = spawnSync(process.execPath, ['bin/repro.js', 'compare', file, 'paper'], { cwd: ROOT, encoding: 'utf8' });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    const line = ok.stdout.split('\n').find((l) => /^conv\s+pre\s+unit\s+fp16\s+1\s/.test(l));
    expect(line?.split(/\s+/)).toEqual(['conv', 'pre', 'unit', 'fp16', '1', '2^-6', '1.700', '1.650', '1.622', '+0.028']);

    const missing = spawnSync(process.execPath, ['bin/repro.js', 'compare', join(file, '..', 'nope.csv'), 'paper'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^repro: .*nope\.csv: results file not found\n$/);
  });
});
