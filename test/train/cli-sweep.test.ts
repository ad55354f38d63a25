import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readResults } from '../../src/results/csv.ts';
import { repro } from './cli.ts';
import { tempDir } from './helpers.ts';

const SWEEP = `
name: cli-tiny
description: regular vs unit charlm-quick, 2 lrs, a few steps
base: charlm-quick
axes:
  scaling.mode: [regular, unit]
steps: 6
set:
  training.valid_interval: 0
  training.log_interval: 3
  training.eval_batches: 1
lr_search:
  start: { regular: 2^-8, unit: 2^-6 }
  step: 2
  threshold: 100
  reps: 1
  max_trials: 2
`;

describe('repro sweep', () => {
  it('runs 2 configurations x 2 lrs in 2 worker processes, writes rows and a summary, and skips them when re-run', () => {
    const dir = tempDir();
    const file = join(dir, 'cli-tiny.yaml');
    writeFileSync(file, SWEEP);
    const results = join(dir, 'out', 'sweep.csv');
    const args = ['sweep', file, '--jobs', '2', '--results', results, '--runs-dir', join(dir, 'runs'), '--device', 'cpu'];

    const first = repro(...args);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout.match(/: started$/gm)).toHaveLength(4);
    const rows = readResults(results).rows;
    expect(rows.map((r) => `${r.configuration} ${r.lr} ${r.status}`).sort()).toEqual([
      'scaling.mode=regular 0.00390625 ok',
      'scaling.mode=regular 0.0078125 ok',
      'scaling.mode=unit 0.015625 ok',
      'scaling.mode=unit 0.03125 ok',
    ]);
    expect(new Set(rows.map((r) => r.scaling))).toEqual(new Set(['regular', 'unit']));
    const summary = readResults(join(dir, 'out', 'sweep-summary.csv')).rows;
    expect(summary.map((r) => r.configuration)).toEqual(['scaling.mode=regular', 'scaling.mode=unit']);
    expect(first.stdout).toMatch(/^scaling\.mode=unit\s+2\^-[56]\s+\d\.\d{3}\s+\d\.\d{3}\s+1\s+2$/m);

    const second = repro(...args);
    expect(second.code).toBe(0);
    expect(second.stdout).not.toMatch(/started/);
    expect(second.stdout.match(/already in/g)).toHaveLength(4);
    expect(readResults(results).rows).toHaveLength(4);
    expect(readResults(join(dir, 'out', 'sweep-summary.csv')).rows).toEqual(summary);
  });

  it('rejects a bad --jobs value with one line and exit code 2', () => {
    const { code, stderr } = repro('sweep', 'sweep-quick', '--jobs', '0');
    expect(code).toBe(2);
    expect(stderr).toBe('repro: --jobs: expected a positive integer, got 0\n');
  });
});
