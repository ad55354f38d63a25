import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ExperimentConfig } from '../../src/config/schema.ts';
import { readResults } from '../../src/results/csv.ts';
import type { LanguageModel } from '../../src/models/types.ts';
import { runExperiment } from '../../src/train/run-experiment.ts';
import { buildBigramModel } from './bigram-model.ts';
import { quickConfig, tempDir, unigramEntropyBits } from './helpers.ts';

interface LogRecord {
  event: string;
  step?: number;
  split?: string;
  loss?: number | string;
}

function readLog(runDir: string): LogRecord[] {
  return readFileSync(join(runDir, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as LogRecord);
}

describe('a training run (bigram model on data/sample)', () => {
  it('learns: valid BPC ends well below the unigram entropy of the text; row, log and checkpoint written', async () => {
    const dir = tempDir();
    const resultsFile = join(dir, 'results.csv');
    const config = quickConfig('training.steps=150', 'training.lr=2^-4', 'training.valid_interval=50', 'training.log_interval=25');
    const result = await runExperiment({ config, resultsFile, runsDir: dir, buildModel: buildBigramModel, progress: 'silent' });

    const entropy = unigramEntropyBits('valid');
    expect(entropy).toBeGreaterThan(4);
    expect(result.status).toBe('ok');
    expect(result.bpc.valid).toBeLessThan(entropy - 0.5);

    const table = readResults(resultsFile);
    expect(table.rows).toHaveLength(1);
    const row = table.rows[0];
    expect(row).toMatchObject({ run_id: result.runId, experiment: 'charlm-quick', status: 'ok', steps_done: '150', lr: '0.0625', device: 'cpu', seed: '0' });
    expect(Number(row.valid_bpc)).toBe(result.bpc.valid);
    expect(table.columns.slice(0, 3)).toEqual(['run_id', 'experiment', 'mixer']);

    const log = readLog(result.runDir);
    expect(log[0].event).toBe('start');
    expect(log.filter((r) => r.event === 'eval' && r.split === 'valid').map((r) => r.step)).toEqual([0, 50, 100, 150]);
    expect(log.filter((r) => r.event === 'train').map((r) => r.step)).toEqual([25, 50, 75, 100, 125, 150]);
    expect(log.at(-1)?.event).toBe('end');
    expect(existsSync(join(result.runDir, 'checkpoint.bin'))).toBe(true);
    expect(existsSync(join(result.runDir, 'config.yaml'))).toBe(true);
  });

  it('a NaN loss ends the run as diverged at the next report, with a row, not an error', async () => {
    const dir = tempDir();
    const resultsFile = join(dir, 'results.csv');
    const config = quickConfig('training.steps=100', 'training.log_interval=25', 'training.valid_interval=0');
    const buildModel = (c: ExperimentConfig, v: number, s: number) => buildBigramModel(c, v, s, { nanAfterSteps: 30 });
    const result = await runExperiment({ config, resultsFile, runsDir: dir, buildModel, progress: 'silent' });
    expect(result.status).toBe('diverged');
    expect(result.stepsDone).toBe(50);
    const [row] = readResults(resultsFile).rows;
    expect(row).toMatchObject({ status: 'diverged', steps_done: '50', valid_bpc: 'NaN', test_bpc: 'NaN', train_bpc: 'NaN' });
    expect(readLog(result.runDir).some((r) => r.event === 'diverged' && r.step === 50)).toBe(true);
  });

  it('an error inside training writes a failed row and is rethrown', async () => {
    const dir = tempDir();
    const resultsFile = join(dir, 'results.csv');
    const config = quickConfig('training.steps=20', 'training.log_interval=5', 'training.valid_interval=0');
    const buildModel = (c: ExperimentConfig, v: number, s: number): LanguageModel => {
      const model = buildBigramModel(c, v, s);
      let calls = 0;
      return {
        parameters: model.parameters,
        loss: (batch, options) => {
          if (++calls > 12) throw new Error('kernel exploded');
          return model.loss(batch, options);
        },
      };
    };
    await expect(runExperiment({ config, resultsFile, runsDir: dir, buildModel, progress: 'silent' })).rejects.toThrow('kernel exploded');
    expect(readResults(resultsFile).rows[0]).toMatchObject({ status: 'failed', steps_done: '10' });
  });

  it('an interrupted run resumed from its checkpoint ends exactly as an uninterrupted one (FP16 weights, stochastic rounding)', async () => {
    const dir = tempDir();
    const resultsFile = join(dir, 'results.csv');
    const config = quickConfig('training.steps=60', 'training.log_interval=10', 'training.valid_interval=30', 'precision.mode=fp16', 'training.lr=2^-5');
    const whole = await runExperiment({ config, resultsFile, runsDir: dir, buildModel: buildBigramModel, progress: 'silent' });

    // stop after step 37: mid log window, so the pending loss sum must survive the checkpoint
    const controller = new AbortController();
    const stopping = (c: ExperimentConfig, v: number, s: number): LanguageModel => {
      const model = buildBigramModel(c, v, s);
      let calls = 0;
      return {
        parameters: model.parameters,
        loss: (batch, options) => {
          if (options.training && ++calls === 37) controller.abort();
          return model.loss(batch, options);
        },
      };
    };
    const first = await runExperiment({ config, resultsFile, runsDir: dir, buildModel: stopping, progress: 'silent', signal: controller.signal });
    expect(first).toMatchObject({ status: 'interrupted', stepsDone: 37, row: null });
    expect(readResults(resultsFile).rows).toHaveLength(1);

    const resumed = await runExperiment({ config, resultsFile, runsDir: dir, buildModel: buildBigramModel, progress: 'silent', resumeDir: first.runDir });
    expect(resumed.runId).toBe(first.runId);
    expect(resumed.status).toBe('ok');
    expect(resumed.bpc).toEqual(whole.bpc);
    const trainLosses = (records: LogRecord[]) => records.filter((r) => r.event === 'train').map((r) => [r.step, r.loss]);
    expect(trainLosses(readLog(resumed.runDir))).toEqual(trainLosses(readLog(whole.runDir)));
    expect(readResults(resultsFile).rows.map((r) => r.run_id)).toEqual([whole.runId, first.runId]);
  });

  it('resuming refuses a configuration that trains differently', async () => {
    const dir = tempDir();
    const config = quickConfig('training.steps=5', 'training.valid_interval=0');
    const run = await runExperiment({ config, resultsFile: join(dir, 'r.csv'), runsDir: dir, buildModel: buildBigramModel, progress: 'silent' });
    const other = quickConfig('training.steps=10', 'training.valid_interval=0', 'training.lr=0.5');
    await expect(
      runExperiment({ config: other, resultsFile: join(dir, 'r.csv'), runsDir: dir, buildModel: buildBigramModel, progress: 'silent', resumeDir: run.runDir }),
    ).rejects.toThrow(/training\.lr is 0\.00390625 in the run, 0\.5 now/);
  });
});
