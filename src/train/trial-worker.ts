/**
 * Child-process entry of `repro sweep --jobs N`: receives one trial over IPC, runs it exactly as
 * `repro run` would (its row goes to the sweep's CSV), replies with the result and exits.
 * Started by trial-runner.ts with tsx's loader.
 */
import { runTrialHere, type TrialJob, type WorkerReply } from './trial-runner.ts';

const controller = new AbortController();
process.on('SIGINT', () => controller.abort());

process.once('message', (job: TrialJob) => {
  runTrialHere(job, { signal: controller.signal })
    .then((result): WorkerReply => ({ ok: true, result }))
    .catch((err: unknown): WorkerReply => ({ ok: false, message: err instanceof Error ? err.message : String(err) }))
    .then((reply) => process.send?.(reply, () => process.disconnect()));
});
