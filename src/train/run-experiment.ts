import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Backend } from '../backend/backend.ts';
import { createBackend, createOwnBackend } from '../backend/select.ts';
import type { ExperimentConfig } from '../config/schema.ts';
import { loadCharDataset, locateDataset, type CharDataset, type Split } from '../data/charlm.ts';
import { ReproError } from '../errors.ts';
import { disposeParameters } from '../optim/index.ts';
import { appendResultRow, type CellValue } from '../results/csv.ts';
import * as T from '../tensor/index.ts';
import type { TrainEvent } from './events.ts';
import { gitCommit } from './git-commit.ts';
import { buildDefaultModel } from './default-model.ts';
import type { ModelBuilder } from './model-builder.ts';
import { progressMode, progressReporter, type ProgressChoice } from './progress.ts';
import { resultRow, roundedBpc, type RunStatus } from './result-row.ts';
import { checkResumable, createRunDir, newRunId, readRunConfig, RUN_FILES } from './run-dir.ts';
import { RunLog } from './run-log.ts';
import { runSeeds, type RunSeeds } from './seeds.ts';
import { train, type TrainOutcome } from './trainer.ts';

export interface RunRequest {
  readonly config: ExperimentConfig;
  /** the CSV the run's row is appended to */
  readonly resultsFile: string;
  /** parent of the run directories */
  readonly runsDir: string;
  /** a run directory to continue from its checkpoint */
  readonly resumeDir?: string | null;
  /** default: the model of `model.kind` (the char-LM) */
  readonly buildModel?: ModelBuilder;
  readonly progress?: ProgressChoice;
  /** aborting stops the run after the current step with a checkpoint, and writes no row */
  readonly signal?: AbortSignal;
  /** more columns for the row (a sweep's configuration and repetition) */
  readonly extraColumns?: Record<string, CellValue>;
  readonly dataDir?: string;
  /**
   * Train on a backend of this run's own (createOwnBackend: on CUDA its own stream and memory,
   * given back when the run ends), so that runs started side by side in one process (a sweep's
   * in-process trials, each inside T.isolated) share the GPU. Default: the process's backend.
   */
  readonly ownBackend?: boolean;
  /** datasets already loaded by earlier runs of this process, by location (shared, read-only) */
  readonly datasetCache?: Map<string, Promise<CharDataset>>;
}

export interface RunResult {
  readonly runId: string;
  readonly runDir: string;
  readonly status: RunStatus | 'interrupted';
  readonly stepsDone: number;
  /** final BPC per split as written to the CSV (NaN unless ok) */
  readonly bpc: Record<Split, number>;
  readonly seconds: number;
  readonly device: string;
  /** the row appended to the results file; null when interrupted */
  readonly row: Record<string, CellValue> | null;
}

interface RunPlace {
  readonly runId: string;
  readonly runsDir: string;
  /** the checkpoint to continue from; null for a fresh run */
  readonly checkpoint: string | null;
}

/** Where the run lives; for --resume, checks the directory and its config first (writes nothing). */
function runPlace(request: RunRequest): RunPlace {
  if (!request.resumeDir) return { runId: newRunId(request.config.name), runsDir: request.runsDir, checkpoint: null };
  const runDir = resolve(request.resumeDir);
  checkResumable(readRunConfig(runDir), request.config, request.resumeDir);
  const checkpoint = join(runDir, RUN_FILES.checkpoint);
  if (!existsSync(checkpoint)) throw new ReproError(`--resume ${request.resumeDir}: no ${RUN_FILES.checkpoint} there`);
  return { runId: basename(runDir), runsDir: dirname(runDir), checkpoint };
}

/**
 * One `repro run`: selects the device, loads the data, builds the model, trains (src/train/
 * trainer.ts), and appends one row to the results CSV: `ok`, `diverged` (a NaN/inf loss: not an
 * error) or `failed` (an unexpected error, which is then rethrown). Logs events to
 * runs/<run_id>/log.jsonl.
 */
export async function runExperiment(request: RunRequest): Promise<RunResult> {
  const sessionStart = Date.now();
  const { config } = request;
  const { runId, runsDir, checkpoint } = runPlace(request);
  const seeds = runSeeds(config.seed);

  // Device and data first: a missing GPU or dataset is reported before anything is written.
  const { backend, release } = request.ownBackend ? await createOwnBackend(config.device) : { backend: await createBackend(config.device), release: () => {} };
  const random = new T.RandomContext(seeds.random);
  try {
    T.setDefaultBackend(backend);
    T.setRandomContext(random);
    return await runOnBackend(request, backend, runId, runsDir, checkpoint, seeds, sessionStart);
  } finally {
    random.dispose();
    release();
  }
}

function loadDataset(request: RunRequest): Promise<CharDataset> {
  const spec = { kind: request.config.data.dataset, path: request.config.data.path };
  const cache = request.datasetCache;
  if (!cache) return loadCharDataset(spec, request.dataDir);
  const key = locateDataset(spec, request.dataDir).cacheDir;
  let loading = cache.get(key);
  if (!loading) {
    loading = loadCharDataset(spec, request.dataDir);
    cache.set(key, loading);
    // a failed load is not cached: the next run reports the same error itself
    loading.catch(() => cache.delete(key));
  }
  return loading;
}

async function runOnBackend(
  request: RunRequest,
  backend: Backend,
  runId: string,
  runsDir: string,
  checkpoint: string | null,
  seeds: RunSeeds,
  sessionStart: number,
): Promise<RunResult> {
  const { config } = request;
  const dataset = await loadDataset(request);

  const runDir = createRunDir(runsDir, runId, config);
  const log = new RunLog(join(runDir, RUN_FILES.log));
  log.write(checkpoint ? 'resume' : 'start', { run_id: runId, experiment: config.name, seeds, config });

  const reporter = progressReporter(progressMode(request.progress ?? 'auto'), config.training.steps);
  let lastStep = 0;
  const emit = (event: TrainEvent) => {
    lastStep = event.step;
    const { type, ...fields } = event;
    log.write(type, fields);
    reporter.event(event);
  };

  let outcome: TrainOutcome;
  const model = (request.buildModel ?? buildDefaultModel)(config, dataset.vocab.length, seeds.model);
  try {
    outcome = await train({
      config,
      dataset,
      model,
      seeds,
      checkpointFile: join(runDir, RUN_FILES.checkpoint),
      resumeFrom: checkpoint,
      emit,
      signal: request.signal,
      sessionStart,
      // REPRO_CUDA_GRAPHS=0 keeps CUDA steps eager (for comparison and debugging).
      cudaGraphs: process.env.REPRO_CUDA_GRAPHS !== '0',
    });
  } catch (err) {
    reporter.close();
    const seconds = (Date.now() - sessionStart) / 1000;
    const failed = { train: NaN, valid: NaN, test: NaN };
    const row = resultRow(
      { runId, config, status: 'failed', loss: failed, stepsDone: lastStep, seconds, device: backend.name, gitCommit: gitCommit() },
      request.extraColumns,
    );
    log.write('end', { status: 'failed', error: (err as Error).message });
    appendResultRow(request.resultsFile, row);
    throw err;
  } finally {
    if (model.dispose) model.dispose();
    else disposeParameters(model.parameters);
  }
  reporter.close();

  const row =
    outcome.status === 'interrupted'
      ? null
      : resultRow(
          { runId, config, status: outcome.status, loss: outcome.loss, stepsDone: outcome.stepsDone, seconds: outcome.seconds, device: backend.name, gitCommit: gitCommit() },
          request.extraColumns,
        );
  log.write('end', {
    status: outcome.status,
    steps_done: outcome.stepsDone,
    wall_s: outcome.seconds,
    peak_memory_bytes: backend.memoryStats().peakBytes,
    ...(row ? { row } : {}),
  });
  if (row) appendResultRow(request.resultsFile, row);
  const bpc = { train: roundedBpc(outcome.loss.train), valid: roundedBpc(outcome.loss.valid), test: roundedBpc(outcome.loss.test) };
  return { runId, runDir, status: outcome.status, stepsDone: outcome.stepsDone, bpc, seconds: outcome.seconds, device: backend.name, row };
}
