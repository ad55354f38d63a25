import { join } from 'node:path';
import { existsSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadSweep } from '../../src/config/sweep-load.ts';
import { readResults } from '../../src/results/csv.ts';
import { planSweep } from '../../src/train/sweep-plan.ts';
import { discardCancelledRun, runSweep, type TrialPlacement } from '../../src/train/sweep-runner.ts';
import { runTrialHere } from '../../src/train/trial-runner.ts';
import { configurationHash, trialConfig } from '../../src/train/trial.ts';
import { tempDir } from './helpers.ts';

// The real char-LM in FP16 with stochastic rounding: every step draws random numbers from the
// run's random context and creates tensors on the run's default backend, so trials that
// interleave in one process would change each other's results if those leaked between them.
const SWEEP = `
name: lanes
description: 2 configurations x 2 lrs of the quick char-LM, a few steps each
base: charlm-quick
axes:
  scaling.mode: [regular, unit]
steps: 6
set:
  device: cpu
  precision.mode: fp16
  data.sequences: 4
  data.sequence_length: 32
  data.overlap: 8
  model.depth: 1
  training.valid_interval: 3
  training.log_interval: 2
  training.eval_batches: 2
lr_search:
  start: { regular: 2^-8, unit: 2^-6 }
  step: 2
  threshold: 100
  reps: 1
  max_trials: 2
  lookahead: 2
`;

async function sweepRows(placement: TrialPlacement, jobs: number): Promise<{ rows: Record<string, string>[]; log: string[] }> {
  const dir = tempDir();
  writeFileSync(join(dir, 'lanes.yaml'), SWEEP);
  const plan = planSweep(loadSweep(join(dir, 'lanes.yaml')));
  const resultsFile = join(dir, 'lanes.csv');
  const log: string[] = [];
  await runSweep({ plan, resultsFile, summaryFile: join(dir, 'lanes-summary.csv'), runsDir: join(dir, 'runs'), jobs, placement, log: (l) => log.push(l) });
  return { rows: readResults(resultsFile).rows, log };
}

const byTrial = (rows: Record<string, string>[]) =>
  Object.fromEntries(rows.map((r) => [`${r.configuration}|${r.lr}`, [r.status, r.valid_bpc, r.test_bpc, r.train_bpc]]));

describe('a sweep whose trials share this process (lanes)', () => {
  it('interleaves the trials and gets exactly the results of running them one after another', async () => {
    const sequential = await sweepRows('sequential', 1);
    const lanes = await sweepRows('lanes', 4);
    expect(lanes.rows).toHaveLength(4);
    expect(byTrial(lanes.rows)).toEqual(byTrial(sequential.rows));
    // all four trials started before the first one finished
    const firstEnd = lanes.log.findIndex((l) => / ok, | diverged, /.test(l));
    expect(lanes.log.slice(0, firstEnd).filter((l) => l.endsWith(': started'))).toHaveLength(4);
  }, 120_000);

  it('a trial stopped by its signal reports its run directory, which is removed when the search cancelled it', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'lanes.yaml'), SWEEP);
    const configuration = planSweep(loadSweep(join(dir, 'lanes.yaml'))).configurations[0]!;
    const stop = new AbortController();
    stop.abort();
    const trial = { sweep: 'lanes', configuration: configuration.id, lr: 2 ** -8, rep: 0, config: trialConfig(configuration.config, 2 ** -8, 0), configHash: configurationHash(configuration.config) };
    const outcome = await runTrialHere({ trial, resultsFile: join(dir, 'lanes.csv'), runsDir: join(dir, 'runs') }, { signal: stop.signal });
    if (!('stopped' in outcome)) throw new Error('the trial should have stopped');
    expect(existsSync(outcome.runDir)).toBe(true);
    discardCancelledRun(outcome.runDir);
    expect(existsSync(outcome.runDir)).toBe(false);
  });
});
