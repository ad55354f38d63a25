import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CharDataset } from '../data/charlm.ts';
import type { ModelBuilder } from './model-builder.ts';
import { runExperiment } from './run-experiment.ts';
import { trialColumns, type TrialResult, type TrialSpec } from './trial.ts';

/** Everything a worker needs to run one trial (plain data: it crosses a process boundary). */
export interface TrialJob {
  readonly trial: TrialSpec;
  readonly resultsFile: string;
  readonly runsDir: string;
  readonly dataDir?: string;
}

/** A trial stopped before its end (interrupted or cancelled): its run directory holds a checkpoint. */
export interface StoppedTrial {
  readonly stopped: true;
  readonly runDir: string;
}

export type TrialOutcome = TrialResult | StoppedTrial;

export type WorkerReply = { ok: true; result: TrialOutcome } | { ok: false; message: string };

/** Runs a trial in this process, silently. */
export async function runTrialHere(
  job: TrialJob,
  options: { signal?: AbortSignal; buildModel?: ModelBuilder; ownBackend?: boolean; datasetCache?: Map<string, Promise<CharDataset>> } = {},
): Promise<TrialOutcome> {
  const result = await runExperiment({
    config: job.trial.config,
    resultsFile: job.resultsFile,
    runsDir: job.runsDir,
    dataDir: job.dataDir,
    buildModel: options.buildModel,
    progress: 'silent',
    signal: options.signal,
    ownBackend: options.ownBackend,
    datasetCache: options.datasetCache,
    extraColumns: trialColumns(job.trial),
  });
  if (result.status === 'interrupted') return { stopped: true, runDir: result.runDir };
  return { status: result.status, validBpc: result.bpc.valid, testBpc: result.bpc.test, reused: false };
}

const WORKER = fileURLToPath(new URL('./trial-worker.ts', import.meta.url));

/**
 * Runs a trial in a child process (`--jobs N` on several GPUs or the CPU). Aborting `signal`
 * interrupts the child as Ctrl-C would (it checkpoints and replies that it stopped).
 */
export function runTrialInWorker(job: TrialJob, env: NodeJS.ProcessEnv = process.env, signal?: AbortSignal): Promise<TrialOutcome> {
  return new Promise((resolve, reject) => {
    const child = fork(WORKER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env });
    const interrupt = () => child.kill('SIGINT');
    signal?.addEventListener('abort', interrupt, { once: true });
    child.on('exit', () => signal?.removeEventListener('abort', interrupt));
    let reply: WorkerReply | null = null;
    child.on('message', (message: WorkerReply) => (reply = message));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (reply?.ok) resolve(reply.result);
      else if (reply) reject(new Error(reply.message));
      else reject(new Error(`trial worker exited with ${signal ?? `code ${code}`} before replying`));
    });
    child.send(job);
  });
}
