import { existsSync, rmSync } from 'node:fs';
import { ReproError } from '../errors.ts';
import { numericCell } from '../results/aggregate.ts';
import { readResults, writeResults } from '../results/csv.ts';
import { searchLearningRate } from './lr-search.ts';
import type { ModelBuilder } from './model-builder.ts';
import { JobPool } from './job-pool.ts';
import * as T from '../tensor/index.ts';
import type { CharDataset } from '../data/charlm.ts';
import type { SweepConfiguration, SweepPlan } from './sweep-plan.ts';
import { lrLabel, summariseSweep, type ConfigurationOutcome, type SummaryRow, type TrialRecord } from './sweep-summary.ts';
import { configurationHash, trialConfig, type TrialResult, type TrialSpec } from './trial.ts';
import { runTrialHere, runTrialInWorker, type TrialJob, type TrialOutcome } from './trial-runner.ts';
import { GpuSlots, visibleGpuIds } from './gpu-slots.ts';
import { cudaDeviceCount } from '../backend/cuda/device-count.ts';

export interface SweepRequest {
  readonly plan: SweepPlan;
  /** every trial's row goes here; rows already in it are reused, not re-run */
  readonly resultsFile: string;
  /** per configuration: best lr and its median valid/test BPC (§A9) */
  readonly summaryFile: string;
  readonly runsDir: string;
  /**
   * Trials run at once. Above 1 on a single GPU they share this process, each on its own CUDA
   * stream; on several GPUs or on the CPU each runs in a child process (see TrialPlacement).
   */
  readonly jobs: number;
  /** how trials run (default: chosen from jobs and the GPUs, see TrialPlacement) */
  readonly placement?: TrialPlacement;
  readonly dataDir?: string;
  /** the model of in-process trials; default: the experiment's model */
  readonly buildModel?: ModelBuilder;
  /** stops starting trials (and stops in-process ones after their current step) */
  readonly signal?: AbortSignal;
  /** one line per trial started, finished or reused */
  readonly log: (line: string) => void;
}

export class SweepInterrupted extends ReproError {
  constructor() {
    super('sweep interrupted; run the same command again to continue (finished trials are kept)');
  }
}

const trialKey = (hash: string, lr: number, rep: number) => `${hash}|${lr}|${rep}`;

/** Finished trials (ok or diverged) in the sweep's CSV, by configuration hash, lr and rep. */
function finishedTrials(resultsFile: string): Map<string, TrialResult> {
  const finished = new Map<string, TrialResult>();
  if (!existsSync(resultsFile)) return finished;
  for (const row of readResults(resultsFile).rows) {
    const status = row['status'];
    const lr = numericCell(row['lr']);
    const rep = numericCell(row['rep']);
    if ((status !== 'ok' && status !== 'diverged') || !row['config_hash'] || lr === undefined || rep === undefined) continue;
    finished.set(trialKey(row['config_hash'], lr, rep), {
      status,
      validBpc: numericCell(row['valid_bpc']) ?? NaN,
      testBpc: numericCell(row['test_bpc']) ?? NaN,
      reused: true,
    });
  }
  return finished;
}

/**
 * `repro sweep`: the §A7 learning-rate search for every configuration of a plan, all searches at
 * once, their trials sharing a pool of `jobs` slots. Each trial is a full run whose row goes into
 * the sweep's CSV; a trial whose row is already there (same configuration hash, lr and rep) is
 * not run again. Writes the summary CSV and returns its rows.
 */
/** Whether any configuration may run on a GPU (device cuda or auto). */
function usesGpu(plan: SweepPlan): boolean {
  return plan.configurations.some((c) => c.config.device !== 'cpu');
}

/**
 * How a sweep's trials run: one after another in this process (jobs 1); side by side in this
 * process on one GPU, each trial with a CUDA stream and memory of its own ('lanes'); or in child
 * processes, spread over the GPUs (several GPUs) or the CPU cores. Separate processes on one GPU
 * are time-sliced by the driver, not run side by side, which is why one GPU uses lanes.
 */
export type TrialPlacement = 'sequential' | 'lanes' | 'processes';

function trialPlacement(request: SweepRequest, gpuCount: number): TrialPlacement {
  if (request.jobs === 1) return 'sequential';
  return request.placement ?? (gpuCount === 1 ? 'lanes' : 'processes');
}

/** Trials of configurations whose steps are sequential in time (RNN mixers) take longest: start them first. */
function isLongTrial(configuration: SweepConfiguration): boolean {
  return configuration.config.model.mixer === 'rnn';
}

/**
 * A speculative trial the search no longer needs stops with a checkpoint like an interrupted run,
 * but nothing will resume it (the CSV has no row for it, and a rerun of the sweep starts that lr
 * afresh): its directory, checkpoint included, would only take disk space. A sweep the user
 * interrupts keeps its trials' directories.
 */
export function discardCancelledRun(runDir: string): void {
  rmSync(runDir, { recursive: true, force: true });
}

export async function runSweep(request: SweepRequest): Promise<SummaryRow[]> {
  const { plan, log } = request;
  const finished = finishedTrials(request.resultsFile);
  const pool = new JobPool(request.jobs);
  const gpuPlan = request.jobs > 1 && usesGpu(plan);
  // Kernels of many streams run concurrently only with enough hardware queues (default 8);
  // the driver reads this at initialisation, which cudaDeviceCount below performs.
  if (gpuPlan) process.env.CUDA_DEVICE_MAX_CONNECTIONS ??= '32';
  const gpuCount = gpuPlan ? cudaDeviceCount() : 0;
  const placement = trialPlacement(request, gpuCount);
  const gpus = new GpuSlots(placement === 'processes' ? gpuCount : 0, visibleGpuIds(gpuCount));
  const datasetCache = new Map<string, Promise<CharDataset>>();

  const runTrial = async (trial: TrialSpec, priority: number, cancel: AbortSignal): Promise<TrialResult> => {
    const name = `[${trial.configuration}] lr ${lrLabel(trial.lr)} rep ${trial.rep}`;
    const done = finished.get(trialKey(trial.configHash, trial.lr, trial.rep));
    if (done) {
      log(`${name}: already in ${request.resultsFile} (${done.status}, valid ${done.validBpc} BPC)`);
      return done;
    }
    const stop = request.signal ? AbortSignal.any([request.signal, cancel]) : cancel;
    return pool.run(
      async () => {
        if (request.signal?.aborted) throw new SweepInterrupted();
        log(`${name}: started`);
        const job: TrialJob = { trial, resultsFile: request.resultsFile, runsDir: request.runsDir, dataDir: request.dataDir };
        const started = Date.now();
        let result: TrialOutcome;
        try {
          if (placement === 'processes') {
            const slot = gpus.acquire();
            try {
              result = await runTrialInWorker(job, slot.env, stop);
            } finally {
              slot.release();
            }
          } else if (placement === 'lanes') {
            result = await T.isolated(() => runTrialHere(job, { signal: stop, buildModel: request.buildModel, ownBackend: true, datasetCache }));
          } else result = await runTrialHere(job, { signal: stop, buildModel: request.buildModel, datasetCache });
        } catch (err) {
          log(`${name}: failed (${err instanceof Error ? err.message : String(err)})`);
          return { status: 'failed', validBpc: NaN, testBpc: NaN, reused: false };
        }
        if ('stopped' in result) {
          if (request.signal?.aborted) throw new SweepInterrupted();
          discardCancelledRun(result.runDir);
          log(`${name}: cancelled (the search stopped before this lr); its run directory was removed`);
          return { status: 'failed', validBpc: NaN, testBpc: NaN, reused: false };
        }
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        log(`${name}: ${result.status}, valid ${result.validBpc} BPC, test ${result.testBpc} BPC (${seconds} s)`);
        return result;
      },
      priority,
      cancel,
    );
  };

  const searchConfiguration = async (configuration: SweepConfiguration): Promise<ConfigurationOutcome> => {
    const trials: TrialRecord[] = [];
    const configHash = configurationHash(configuration.config);
    // Speculative lrs (depth > 0) wait behind the lrs searches need now; long configurations first.
    const urgency = isLongTrial(configuration) ? -(configuration.lrSearch.lookahead ?? 1) : 0;
    // One trial at a time gains nothing from speculation (the result is the same either way).
    const lookahead = placement === 'sequential' ? 1 : configuration.lrSearch.lookahead;
    const search = await searchLearningRate({ ...configuration.lrSearch, lookahead, parallelReps: true }, async (lr, rep, control) => {
      const config = trialConfig(configuration.config, lr, rep);
      const result = await runTrial({ sweep: plan.name, configuration: configuration.id, lr, rep, config, configHash }, control.depth + urgency, control.signal);
      if (control.signal.aborted) return NaN;
      trials.push({ ...result, lr, rep });
      // the search compares final valid losses in nats (§A7)
      return result.validBpc * Math.LN2;
    });
    if (search.speculative.length > 0)
      log(`[${configuration.id}] search stopped (${search.stoppedBy}); lrs started ahead and not needed: ${search.speculative.map(lrLabel).join(', ')}`);
    return { configuration, search, trials };
  };

  const outcomes = await Promise.all(plan.configurations.map(searchConfiguration));
  const summary = summariseSweep(outcomes);
  const columns = [...new Set(summary.flatMap((row) => Object.keys(row)))];
  writeResults(request.summaryFile, {
    columns,
    rows: summary.map((row) => Object.fromEntries(columns.map((c) => [c, row[c] === undefined ? '' : String(row[c])]))),
  });
  return summary;
}
