import { z } from 'zod';
import { coerceNumberLike } from './numbers.ts';

/*
 * The experiment file format. YAML keys are snake_case and the TypeScript types keep the same keys,
 * so a config read from a file, printed by `repro show` and used by the trainer look alike.
 * Every key is required in the resolved config; experiment files get them by extending
 * experiments/charlm/base.yaml, which restates the paper's Table A.3.
 */

export const DEVICES = ['cpu', 'cuda', 'auto'] as const;
export const DATASETS = ['wikitext103', 'sample', 'text'] as const;
export const MODEL_KINDS = ['charlm'] as const;
export const MIXERS = ['attention', 'conv', 'rnn'] as const;
export const NORMS = ['pre', 'post', 'none'] as const;
export const SCALING_MODES = ['regular', 'unit'] as const;
export const SCALING_RULES = ['paper-charlm', 'paper-library', 'umup'] as const;
export const CONSTRAINTS = [
  'gmean',
  'hmean',
  'amean',
  'to_output_scale',
  'to_grad_input_scale',
  'to_left_grad_scale',
  'to_right_grad_scale',
  'none',
] as const;
export const PRECISION_MODES = ['fp32', 'fp16', 'bf16', 'fp8'] as const;
export const FP8_FAMILIES = ['paper', 'ocp'] as const;
export const ROUNDINGS = ['stochastic', 'nearest'] as const;
export const MATMUL_MODES = ['simulated', 'native'] as const;
export const OPTIMISERS = ['adamw', 'sgdm', 'lamb'] as const;

/** Defaults of an enabled dynamic loss scale (PyTorch GradScaler's: 2^16, grow ×2 after 2000 good steps). */
export const DYNAMIC_LOSS_SCALE_DEFAULTS = { init: 65536, growth_interval: 2000, factor: 2 } as const;

interface NumberBounds {
  integer?: boolean;
  /** inclusive lower bound */
  min?: number;
  /** exclusive lower bound */
  above?: number;
  /** inclusive upper bound */
  max?: number;
  /** exclusive upper bound */
  below?: number;
}

/** A number that may also be written as a numeric or power-of-two string ("2^-10"). */
function numberLike(bounds: NumberBounds = {}) {
  let schema = z.number();
  if (bounds.integer) schema = schema.int();
  if (bounds.min !== undefined) schema = schema.min(bounds.min);
  if (bounds.above !== undefined) schema = schema.gt(bounds.above);
  if (bounds.max !== undefined) schema = schema.max(bounds.max);
  if (bounds.below !== undefined) schema = schema.lt(bounds.below);
  return z.preprocess(coerceNumberLike, schema);
}

const count = (min: number) => numberLike({ integer: true, min });

export const DataSchema = z.strictObject({
  dataset: z.enum(DATASETS),
  /** directory holding train.txt / valid.txt / test.txt; required for `dataset: text` */
  path: z.string().min(1).nullable(),
  sequences: count(1),
  sequence_length: count(2),
  /** leading context positions of each window that are not scored */
  overlap: count(0),
});

export const AttentionSchema = z.strictObject({
  heads: count(1),
  head_size: count(1),
  /** number of relative-position sinusoids (sin/cos pairs, so even) */
  frequencies: count(4),
  max_period: numberLike({ above: 0 }),
  /** added to the logits of future keys; -3e4 stays finite in FP16 */
  mask_value: numberLike({ below: 0 }),
});

export const ConvSchema = z.strictObject({
  kernel: count(1),
  groups: count(1),
});

export const RnnSchema = z.strictObject({
  /** subtracted from the update gate's pre-activation (Recurrent Highway Network) */
  rebias: numberLike(),
});

/** Residual weighting: none (plain add), "mean" (alpha = 1/(1+branch index)) or a fixed alpha. */
export const AlphaSchema = z.preprocess(
  coerceNumberLike,
  z.union([z.enum(['none', 'mean']), z.number().gt(0).lte(1)], {
    error: 'expected none, mean or a number in (0, 1]',
  }),
);

export const ModelSchema = z.strictObject({
  kind: z.enum(MODEL_KINDS),
  mixer: z.enum(MIXERS),
  hidden: count(1),
  depth: count(1),
  ffn_multiple: count(1),
  norm: z.enum(NORMS),
  alpha: AlphaSchema,
  layernorm_eps: numberLike({ min: 0 }),
  attention: AttentionSchema,
  conv: ConvSchema,
  rnn: RnnSchema,
});

export const ScalingSchema = z.strictObject({
  mode: z.enum(SCALING_MODES),
  rules: z.enum(SCALING_RULES),
  constraint: z.enum(CONSTRAINTS),
});

export const PrecisionSchema = z.strictObject({
  mode: z.enum(PRECISION_MODES),
  /** paper: Graphcore-style E4M3 (max 240) / E5M2 (max 57344); ocp: OCP E4M3 (max 448) / E5M2 */
  fp8_family: z.enum(FP8_FAMILIES),
  /** rounding of casts of weights and activations to the low-precision format */
  rounding: z.enum(ROUNDINGS),
  /** fp16/bf16: keep an FP32 master copy of the weights instead of rounding the stored weights */
  master_weights: z.boolean(),
  /** simulated: quantise then multiply in FP32; native: CUDA low-precision GEMMs */
  matmul: z.enum(MATMUL_MODES),
  allow_tf32: z.boolean(),
});

const DynamicLossScaleObject = z.strictObject({
  init: numberLike({ above: 0 }).default(DYNAMIC_LOSS_SCALE_DEFAULTS.init),
  /** consecutive finite steps before the scale is multiplied by `factor` */
  growth_interval: count(1).default(DYNAMIC_LOSS_SCALE_DEFAULTS.growth_interval),
  /** growth factor; a step with a non-finite gradient is skipped and divides the scale by it */
  factor: numberLike({ above: 1 }).default(DYNAMIC_LOSS_SCALE_DEFAULTS.factor),
});

/** `false` (static `loss_scale`), `true` (the defaults above) or an object overriding them. */
export const DynamicLossScaleSchema = z
  .preprocess((value) => (value === true ? {} : value === false ? null : value), DynamicLossScaleObject.nullable())
  .transform((value) => value ?? (false as const));

export const TrainingSchema = z.strictObject({
  optimiser: z.enum(OPTIMISERS),
  lr: numberLike({ above: 0 }),
  /** lr_t = lr * 2^(-(t-1) * lr_decay) for 1-based step t */
  lr_decay: numberLike({ min: 0 }),
  steps: count(1),
  /** evaluate on the valid split at step 0 and every this many steps; 0 = only at the end */
  valid_interval: count(0),
  beta1: numberLike({ min: 0, below: 1 }),
  beta2: numberLike({ min: 0, below: 1 }),
  eps: numberLike({ min: 0 }),
  weight_decay: numberLike({ min: 0 }),
  /** SGD momentum (sgdm only) */
  momentum: numberLike({ min: 0, below: 1 }),
  /** static multiplier of the loss gradient (SGD divides it back out; Adam ignores it) */
  loss_scale: numberLike({ above: 0 }),
  dynamic_loss_scale: DynamicLossScaleSchema,
  log_interval: count(1),
  /** 0 = only at the end */
  checkpoint_interval: count(0),
  /** null = the full split; a number limits evaluation to that many batches (quick runs) */
  eval_batches: count(1).nullable(),
});

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export const ExperimentSchema = z
  .strictObject({
    name: z.string().regex(NAME, { error: 'expected letters, digits, ".", "_" or "-"' }),
    description: z.string(),
    seed: count(0),
    device: z.enum(DEVICES),
    data: DataSchema,
    model: ModelSchema,
    scaling: ScalingSchema,
    precision: PrecisionSchema,
    training: TrainingSchema,
  })
  .superRefine((config, ctx) => {
    const issue = (path: string[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const { data, model } = config;
    if (data.overlap >= data.sequence_length)
      issue(['data', 'overlap'], `expected less than data.sequence_length (${data.sequence_length})`);
    if (data.dataset === 'text' && data.path === null)
      issue(['data', 'path'], 'expected a directory with train.txt, valid.txt and test.txt when data.dataset is text');
    if (model.attention.frequencies % 2 !== 0)
      issue(['model', 'attention', 'frequencies'], 'expected an even number (sin/cos pairs)');
    if (model.mixer === 'conv' && model.hidden % model.conv.groups !== 0)
      issue(['model', 'conv', 'groups'], `expected a divisor of model.hidden (${model.hidden})`);
    if (config.scaling.mode === 'unit' && model.alpha === 'none')
      issue(['model', 'alpha'], 'expected mean or a number in (0, 1]: unit scaling needs a residual alpha');
  });

export type ExperimentConfig = z.output<typeof ExperimentSchema>;
export type DataConfig = ExperimentConfig['data'];
export type ModelConfig = ExperimentConfig['model'];
export type AttentionConfig = ModelConfig['attention'];
export type ConvConfig = ModelConfig['conv'];
export type RnnConfig = ModelConfig['rnn'];
export type ScalingConfig = ExperimentConfig['scaling'];
export type PrecisionConfig = ExperimentConfig['precision'];
export type TrainingConfig = ExperimentConfig['training'];
export type DynamicLossScaleConfig = z.output<typeof DynamicLossScaleObject>;

export type Device = (typeof DEVICES)[number];
export type Dataset = (typeof DATASETS)[number];
export type Mixer = (typeof MIXERS)[number];
export type Norm = (typeof NORMS)[number];
export type Alpha = ModelConfig['alpha'];
export type ScalingMode = (typeof SCALING_MODES)[number];
export type ScalingRules = (typeof SCALING_RULES)[number];
export type Constraint = (typeof CONSTRAINTS)[number];
export type PrecisionMode = (typeof PRECISION_MODES)[number];
export type Fp8Family = (typeof FP8_FAMILIES)[number];
export type Rounding = (typeof ROUNDINGS)[number];
export type MatmulMode = (typeof MATMUL_MODES)[number];
export type Optimiser = (typeof OPTIMISERS)[number];
