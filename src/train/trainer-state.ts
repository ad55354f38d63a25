import { ReproError } from '../errors.ts';
import type { LossScaleState } from '../optim/index.ts';
import * as T from '../tensor/index.ts';
import type { LoadedCheckpoint, SavedArray } from './checkpoint.ts';

/** The host-side part of a checkpoint: everything that is not a device tensor. */
export interface TrainerMeta {
  readonly version: 1;
  /** optimiser steps taken */
  readonly step: number;
  /** WindowSampler state: the training data stream continues from here */
  readonly sampler: number;
  readonly lossScale: LossScaleState;
  /** steps and scored characters summed into the running train loss since the last report */
  readonly pending: { readonly steps: number; readonly scored: number };
  /** wall-clock seconds the run has taken so far, over all sessions */
  readonly seconds: number;
}

/** Device tensors of the run by checkpoint name: parameters, optimiser state, running sums. */
export type DeviceState = Map<string, T.Tensor>;

/** Copies device state to the host (a sync; only at checkpoints). */
export function snapshot(state: DeviceState): Map<string, SavedArray> {
  return new Map([...state].map(([name, t]) => [name, { shape: t.shape, data: t.toArray() }]));
}

/** Writes saved arrays back into the run's tensors; every tensor must be present with its shape. */
export function restore(state: DeviceState, checkpoint: LoadedCheckpoint, file: string): void {
  for (const [name, tensor] of state) {
    const saved = checkpoint.arrays.get(name);
    if (!saved) throw new ReproError(`${file}: the checkpoint has no ${name} (was it written by a different model or optimiser?)`);
    const sameShape = saved.shape.length === tensor.shape.length && saved.shape.every((d, i) => d === tensor.shape[i]);
    const sameType = (saved.data instanceof Int32Array) === (tensor.dtype === 'i32');
    if (!sameShape || !sameType) {
      throw new ReproError(`${file}: ${name} has shape [${saved.shape.join(', ')}] in the checkpoint, [${tensor.shape.join(', ')}] in the model`);
    }
    tensor.backend.write(tensor.storage, saved.data);
  }
}

export function trainerMeta(checkpoint: LoadedCheckpoint, file: string): TrainerMeta {
  const meta = checkpoint.meta as Partial<TrainerMeta> | null;
  if (!meta || meta.version !== 1 || typeof meta.step !== 'number' || typeof meta.sampler !== 'number' || !meta.lossScale || !meta.pending) {
    throw new ReproError(`${file}: not a training checkpoint of this version`);
  }
  return meta as TrainerMeta;
}
