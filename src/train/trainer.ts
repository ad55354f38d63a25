import type { ExperimentConfig } from '../config/schema.ts';
import { evalBatches, trainBatches, trainEstimateBatches, WindowSampler, type WindowOptions } from '../data/batching.ts';
import type { CharDataset, Split } from '../data/charlm.ts';
import type { LanguageModel } from '../models/types.ts';
import { buildLossScaler, buildOptimiser, zeroGradients } from '../optim/index.ts';
import * as T from '../tensor/index.ts';
import { readCheckpoint, writeCheckpoint } from './checkpoint.ts';
import { DeviceSum } from './device-sum.ts';
import { bitsPerCharacter, splitLoss } from './evaluate.ts';
import type { EventSink } from './events.ts';
import type { RunSeeds } from './seeds.ts';
import { restore, snapshot, trainerMeta, type DeviceState, type TrainerMeta } from './trainer-state.ts';
import { StepRunner } from './step-graph.ts';
import { deviceIdle, QueueLimit, yieldToEventLoop } from './device-wait.ts';

/*
 * The training loop of one run (experiments.md §A3–§A6), top to bottom: set up the optimiser,
 * loss scaling and data stream; optionally restore a checkpoint; then step, report, evaluate and
 * checkpoint until `training.steps`; then the final evaluation. Nothing inside a step reads from
 * the device: the training loss is summed on the device and read every `log_interval` steps,
 * which is also where divergence (a NaN or inf anywhere in the sum) is detected. The one
 * exception is dynamic loss scaling, which reads one flag per step (src/optim/loss-scale.ts).
 * Waits for the device poll instead of blocking (device-wait.ts), so runs that share a process
 * and a GPU (a sweep's in-process trials) keep each other's queues filled.
 */

export interface TrainerInput {
  readonly config: ExperimentConfig;
  readonly dataset: CharDataset;
  /** built on the current default backend, with the run's model seed */
  readonly model: LanguageModel;
  readonly seeds: RunSeeds;
  /** written every `checkpoint_interval` steps, at the end and when interrupted; null: never */
  readonly checkpointFile: string | null;
  /** a checkpoint of this same run to continue from */
  readonly resumeFrom: string | null;
  readonly emit: EventSink;
  /** when aborted, the run stops after the current step, checkpoints and returns 'interrupted' */
  readonly signal?: AbortSignal;
  /** Date.now() when this session of the run began (for wall time across resumptions) */
  readonly sessionStart: number;
  /** On CUDA, capture the step as a graph after warm-up and replay it (default true). */
  readonly cudaGraphs?: boolean;
}

export type TrainStatus = 'ok' | 'diverged' | 'interrupted';

export interface TrainOutcome {
  readonly status: TrainStatus;
  readonly stepsDone: number;
  /** final mean nats per scored character of each split; NaN unless the run finished */
  readonly loss: Record<Split, number>;
  /** wall-clock seconds over all sessions of this run */
  readonly seconds: number;
}

export function windowOptions(config: ExperimentConfig): WindowOptions {
  return { sequences: config.data.sequences, sequenceLength: config.data.sequence_length, overlap: config.data.overlap };
}

/** lr_t of AdamW and SGD (§A5), for reports only. */
function reportedLr(config: ExperimentConfig, step: number): number {
  const t = config.training;
  return t.optimiser === 'lamb' ? t.lr : t.lr * 2 ** (-(Math.max(1, step) - 1) * t.lr_decay);
}

export async function train(input: TrainerInput): Promise<TrainOutcome> {
  const { config, dataset, model, seeds, emit } = input;
  const t = config.training;
  const windows = windowOptions(config);
  const params = model.parameters;
  const random = T.randomContext();
  const backend = T.defaultBackend();
  // Steps queued ahead of the GPU: enough to keep it busy, few enough that waiting never blocks.
  const queue = new QueueLimit(backend);

  const optimiser = buildOptimiser(params, config);
  const lossScaler = buildLossScaler(config);
  const trainLoss = new DeviceSum();
  const deviceState: DeviceState = new Map([
    ...params.map((p) => [`param.${p.name}`, p.tensor] as const),
    ...[...optimiser.stateTensors()].map(([name, tensor]) => [`optim.${name}`, tensor] as const),
    ['train_loss.sum', trainLoss.total],
  ]);

  let step = 0;
  let sampler = new WindowSampler(seeds.batches);
  let priorSeconds = 0;
  // steps and scored characters summed into trainLoss since the last report
  let pending = { steps: 0, scored: 0 };
  if (input.resumeFrom) {
    const checkpoint = readCheckpoint(input.resumeFrom);
    const meta = trainerMeta(checkpoint, input.resumeFrom);
    restore(deviceState, checkpoint, input.resumeFrom);
    const epoch = checkpoint.arrays.get('random.epoch');
    if (epoch) backend.write(random.epoch(), epoch.data);
    ({ step, pending, seconds: priorSeconds } = meta);
    sampler = new WindowSampler(meta.sampler);
    lossScaler.restore(meta.lossScale);
  }
  const batches = trainBatches(dataset.splits.train, windows, sampler);

  // One step: forward and backward in one scope, then the update; nothing reads from the device,
  // except dynamic loss scaling's one flag, which is why only a static scale lets the step be
  // captured as a CUDA graph (a static scaler's decision is a constant).
  const runner = new StepRunner(
    backend,
    windows,
    () => {
      random.beginStep();
      T.tidy(() => {
        const { loss } = model.loss(runner.inputs, { training: true, lossScale: lossScaler.scale });
        T.backward(loss);
        trainLoss.add(loss);
      });
      const update = lossScaler.decide(params);
      if (update.apply) optimiser.step(update.gradScale);
      zeroGradients(params);
    },
    (input.cudaGraphs ?? true) && t.dynamic_loss_scale === false,
  );
  const elapsed = () => priorSeconds + (Date.now() - input.sessionStart) / 1000;

  const evaluate = async (split: Split): Promise<number> => {
    const source =
      split === 'train'
        ? trainEstimateBatches(dataset.splits.train, dataset.splits.valid.length, windows, seeds.batches)
        : evalBatches(dataset.splits[split], windows);
    const loss = await splitLoss(model, source, windows, t.eval_batches);
    emit({ type: 'eval', step, split, loss, bpc: bitsPerCharacter(loss) });
    return loss;
  };

  const saveCheckpoint = async () => {
    if (!input.checkpointFile) return;
    await deviceIdle(backend);
    const meta: TrainerMeta = { version: 1, step, sampler: sampler.state, lossScale: lossScaler.state(), pending, seconds: elapsed() };
    const arrays = snapshot(deviceState);
    arrays.set('random.epoch', { shape: [1], data: backend.read(random.epoch()) });
    writeCheckpoint(input.checkpointFile, meta, arrays);
    emit({ type: 'checkpoint', step, file: input.checkpointFile });
  };

  const finish = (status: TrainStatus, loss: Record<Split, number> = { train: NaN, valid: NaN, test: NaN }): TrainOutcome => ({
    status,
    stepsDone: step,
    loss,
    seconds: elapsed(),
  });

  const diverged = (where: 'train' | Split) => {
    emit({ type: 'diverged', step, where });
    return finish('diverged');
  };

  try {
    let windowStart = Date.now();
    while (step < t.steps) {
      if (t.valid_interval > 0 && step % t.valid_interval === 0) {
        if (!Number.isFinite(await evaluate('valid'))) return diverged('valid');
        windowStart = Date.now();
      }

      const batch = batches.next().value;
      runner.run(batch);
      step++;
      pending = { steps: pending.steps + 1, scored: pending.scored + batch.scored };

      if (step % t.log_interval === 0 || step === t.steps) {
        const loss = (await trainLoss.read()) / pending.steps;
        const seconds = (Date.now() - windowStart) / 1000;
        emit({
          type: 'train',
          step,
          steps: t.steps,
          loss,
          bpc: bitsPerCharacter(loss),
          tokensPerSecond: pending.scored / Math.max(seconds, 1e-9),
          lr: reportedLr(config, step),
          lossScale: lossScaler.scale,
        });
        if (!Number.isFinite(loss)) return diverged('train');
        trainLoss.set(0);
        pending = { steps: 0, scored: 0 };
        windowStart = Date.now();
      }
      if (t.checkpoint_interval > 0 && step % t.checkpoint_interval === 0 && step < t.steps) await saveCheckpoint();

      await queue.queued();
      await yieldToEventLoop();
      if (input.signal?.aborted && step < t.steps) {
        await saveCheckpoint();
        return finish('interrupted');
      }
    }

    const loss = { valid: await evaluate('valid'), train: await evaluate('train'), test: await evaluate('test') };
    if (!Number.isFinite(loss.valid)) return diverged('valid');
    await saveCheckpoint();
    return finish('ok', loss);
  } finally {
    queue.dispose();
    runner.dispose();
    optimiser.dispose();
    trainLoss.dispose();
  }
}
