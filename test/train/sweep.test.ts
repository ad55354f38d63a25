import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadSweep } from '../../src/config/sweep-load.ts';
import { readResults } from '../../src/results/csv.ts';
import { planSweep } from '../../src/train/sweep-plan.ts';
import { runSweep } from '../../src/train/sweep-runner.ts';
import { buildBigramModel } from './bigram-model.ts';
import { tempDir } from './helpers.ts';

const SWEEP = `
name: tiny
description: 2 configurations x 2 lrs, a few steps each
base: charlm-quick
axes:
  training.optimiser: [adamw, sgdm]
steps: 20
set:
  device: cpu
  training.valid_interval: 0
  training.eval_batches: 2
lr_search:
  start: { regular: { adamw: 2^-6, sgdm: 2^-2 } }
  step: 2
  threshold: 100
  reps: 1
  max_trials: 2
`;

describe('a sweep (in-process, bigram model)', () => {
  it('runs the lr search per configuration, writes every trial and a summary, and skips them on a re-run', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'tiny.yaml'), SWEEP);
    const plan = planSweep(loadSweep(join(dir, 'tiny.yaml')));
    const resultsFile = join(dir, 'tiny.csv');
    const summaryFile = join(dir, 'tiny-summary.csv');
    const lines: string[] = [];
    const request = { plan, resultsFile, summaryFile, runsDir: join(dir, 'runs'), jobs: 1, buildModel: buildBigramModel, log: (l: string) => lines.push(l) };

    const summary = await runSweep(request);
    const rows = readResults(resultsFile).rows;
    expect(rows).toHaveLength(4);
    expect(rows.map((r) => [r.configuration, Number(r.lr), r.rep, r.status]).sort()).toEqual(
      [
        ['optimiser=adamw', 2 ** -6, '0', 'ok'],
        ['optimiser=adamw', 2 ** -5, '0', 'ok'],
        ['optimiser=sgdm', 2 ** -2, '0', 'ok'],
        ['optimiser=sgdm', 2 ** -1, '0', 'ok'],
      ].sort(),
    );
    expect(new Set(rows.map((r) => r.sweep))).toEqual(new Set(['tiny']));

    // the summary picks, per configuration, the lr with the lower final valid BPC
    const table = readResults(summaryFile);
    expect(table.columns.slice(0, 3)).toEqual(['configuration', 'training.optimiser', 'best_lr']);
    expect(table.rows).toHaveLength(2);
    for (const row of table.rows) {
      const trials = rows.filter((r) => r.configuration === row.configuration);
      const best = trials.reduce((a, b) => (Number(b.valid_bpc) < Number(a.valid_bpc) ? b : a));
      expect(Number(row.best_lr)).toBe(Number(best.lr));
      expect(Number(row.valid_bpc)).toBe(Number(best.valid_bpc));
      expect(Number(row.test_bpc)).toBe(Number(best.test_bpc));
      expect(row).toMatchObject({ reps: '1', lrs_tried: '2', stopped_by: 'max_trials' });
    }
    expect(summary.map((r) => r.configuration)).toEqual(['optimiser=adamw', 'optimiser=sgdm']);

    lines.length = 0;
    const again = await runSweep(request);
    expect(readResults(resultsFile).rows).toHaveLength(4);
    expect(lines.filter((l) => l.includes('already in'))).toHaveLength(4);
    expect(lines.some((l) => l.includes('started'))).toBe(false);
    expect(again).toEqual(summary);
  });
});
