import type { ExperimentConfig } from '../config/schema.ts';

/*
 * Column names of the results CSVs, shared by the writer (the trainer) and by `repro compare`.
 */

/** Hyperparameters that tell char-LM configurations apart (lr included; it is chosen per configuration). */
export const CHARLM_CONFIG_COLUMNS = [
  'mixer',
  'depth',
  'hidden',
  'norm',
  'alpha',
  'scaling',
  'rules',
  'precision',
  'fp8_family',
  'optimiser',
  'lr',
  'loss_scale',
  'steps',
] as const;

/** Final metrics of a char-LM run (bits per character, after the last step). */
export const CHARLM_METRIC_COLUMNS = ['train_bpc', 'valid_bpc', 'test_bpc'] as const;

/** One row per training run, in this order. */
export const CHARLM_RESULT_COLUMNS = [
  'run_id',
  'experiment',
  ...CHARLM_CONFIG_COLUMNS,
  ...CHARLM_METRIC_COLUMNS,
  'status',
  'steps_done',
  'wall_s',
  'device',
  'seed',
  'git_commit',
] as const;

/** Keys of a BERT SQuAD result row (one fine-tuning run); `method` may be given or derived. */
export const BERT_CONFIG_COLUMNS = ['model_size', 'scaling', 'precision', 'loss_scale', 'squad_version'] as const;
export const BERT_METRIC_COLUMNS = ['em', 'f1'] as const;

export type CharLmConfigColumn = (typeof CHARLM_CONFIG_COLUMNS)[number];

/** The configuration columns of a char-LM results row, read from a resolved experiment. */
export function charLmConfigColumns(config: ExperimentConfig): Record<CharLmConfigColumn, string | number> {
  return {
    mixer: config.model.mixer,
    depth: config.model.depth,
    hidden: config.model.hidden,
    norm: config.model.norm,
    alpha: config.model.alpha,
    scaling: config.scaling.mode,
    rules: config.scaling.rules,
    precision: config.precision.mode,
    fp8_family: config.precision.fp8_family,
    optimiser: config.training.optimiser,
    lr: config.training.lr,
    loss_scale: config.training.loss_scale,
    steps: config.training.steps,
  };
}
