import { createHash } from 'node:crypto';
import type { ExperimentConfig } from '../config/schema.ts';

/** One training run of a sweep: a configuration at one lr, repetition `rep`. */
export interface TrialSpec {
  readonly sweep: string;
  /** the configuration's id from the sweep plan */
  readonly configuration: string;
  readonly lr: number;
  readonly rep: number;
  /** the configuration's experiment with this trial's lr and seed */
  readonly config: ExperimentConfig;
  /** configurationHash of the configuration (before the trial's lr and seed) */
  readonly configHash: string;
}

/** What the lr search and the summary need from a finished trial. */
export interface TrialResult {
  readonly status: 'ok' | 'diverged' | 'failed';
  readonly validBpc: number;
  readonly testBpc: number;
  /** true when the row was already in the results CSV */
  readonly reused: boolean;
}

/**
 * A configuration's identity for skipping finished trials: a hash of its resolved experiment
 * (base seed included) without the starting lr, which the search replaces, and the keys that do
 * not change training (name, device, reporting). Editing a sweep's settings therefore re-runs its
 * trials instead of reusing rows.
 */
export function configurationHash(config: ExperimentConfig): string {
  const { name: _name, description: _description, device: _device, training, ...rest } = config;
  const { lr: _lr, log_interval: _log, checkpoint_interval: _checkpoint, ...trainingRest } = training;
  return createHash('sha256').update(JSON.stringify({ ...rest, training: trainingRest })).digest('hex').slice(0, 16);
}

/** The trial's experiment: the configuration at `lr`, with seed + rep so repetitions differ. */
export function trialConfig(config: ExperimentConfig, lr: number, rep: number): ExperimentConfig {
  return { ...config, seed: config.seed + rep, training: { ...config.training, lr } };
}

/** Extra columns of a sweep's results rows, used to find finished trials on a re-run. */
export function trialColumns(trial: TrialSpec): Record<string, string | number> {
  return { sweep: trial.sweep, configuration: trial.configuration, rep: trial.rep, config_hash: trial.configHash };
}
