import { z } from 'zod';
import { coerceNumberLike } from './numbers.ts';
import { OPTIMISERS, SCALING_MODES } from './schema.ts';

/*
 * A sweep: a grid of configurations over a base experiment, each trained with the paper's
 * learning-rate search (§A7). Keys inside `axes`, `set`, `adjust` and `filters` are dotted
 * experiment keys ("model.mixer"); they are checked against the experiment schema when the
 * sweep is planned.
 */

const DOTTED_KEY = /^[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*$/;
const dottedKey = z.string().regex(DOTTED_KEY, { error: 'expected a dotted key such as model.mixer' });

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()], {
  error: 'expected a string, number, boolean or null',
});

/** A condition on a configuration: every key must equal its value (or one of a list of values). */
export const MatchSchema = z.record(dottedKey, z.union([scalar, z.array(scalar).min(1)]));

const positive = z.preprocess(coerceNumberLike, z.number().gt(0));

const startByOptimiser = z.strictObject(Object.fromEntries(OPTIMISERS.map((o) => [o, positive.optional()]))) as z.ZodType<
  Partial<Record<(typeof OPTIMISERS)[number], number>>
>;
const startForVariant = z.union([positive, startByOptimiser], {
  error: 'expected a learning rate or a mapping optimiser -> learning rate',
});

/** Starting lr: one number, or per scaling mode (optionally per optimiser within it). */
export const LrStartSchema = z.union(
  [positive, z.strictObject(Object.fromEntries(SCALING_MODES.map((m) => [m, startForVariant.optional()])))],
  { error: 'expected a learning rate or a mapping regular/unit -> learning rate' },
) as z.ZodType<number | Partial<Record<(typeof SCALING_MODES)[number], number | Partial<Record<(typeof OPTIMISERS)[number], number>>>>>;

export const LrSearchSchema = z.strictObject({
  start: LrStartSchema,
  /** lr multiplier between trials (> 1: the search only moves upwards) */
  step: z.preprocess(coerceNumberLike, z.number().gt(1)),
  /** stop once a median final valid loss exceeds the best by more than this (nats) */
  threshold: z.preprocess(coerceNumberLike, z.number().min(0)),
  reps: z.preprocess(coerceNumberLike, z.number().int().min(1)),
  /** safety cap on the number of lrs tried; null = no cap (the paper's search) */
  max_trials: z.preprocess(coerceNumberLike, z.number().int().min(1)).nullable().default(null),
  /** lrs kept started at once, all but the next needed one speculative; the result is the same */
  lookahead: z.preprocess(coerceNumberLike, z.number().int().min(1)).default(1),
});

export const SweepSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { error: 'expected letters, digits, ".", "_" or "-"' }),
  description: z.string(),
  /** the experiment every configuration starts from (name or .yaml path relative to the sweep file) */
  base: z.string().min(1),
  /** dotted key -> the values it takes; the grid is their product, first axis outermost */
  axes: z.record(dottedKey, z.array(scalar).min(1)).default({}),
  /** overrides applied to every configuration */
  set: z.record(dottedKey, z.unknown()).default({}),
  /** shorthand for set: {training.steps: N} */
  steps: z.preprocess(coerceNumberLike, z.number().int().min(1)).optional(),
  /** overrides applied to the configurations that match `when` (e.g. depth 2 for the RNN) */
  adjust: z.array(z.strictObject({ when: MatchSchema, set: z.record(dottedKey, z.unknown()) })).default([]),
  /** a configuration matching `where` (all, if absent) is dropped unless it also matches `drop_unless` */
  filters: z.array(z.strictObject({ where: MatchSchema.default({}), drop_unless: MatchSchema })).default([]),
  lr_search: LrSearchSchema,
});

export type SweepConfig = z.output<typeof SweepSchema>;
export type SweepMatch = z.output<typeof MatchSchema>;
export type LrStart = z.output<typeof LrStartSchema>;
export type LrSearchConfig = z.output<typeof LrSearchSchema>;
