import { ReproError } from '../errors.ts';
import { resolveCatalogueFile } from '../config/catalogue.ts';
import { fileChain } from '../config/chain.ts';
import { schemaKeys, valueAt } from '../config/issues.ts';
import { mergeLayers, nestDotted, type Layer } from '../config/layers.ts';
import { overrideLayers, validateLayers, type ExperimentFlags } from '../config/load.ts';
import { coerceNumberLike } from '../config/numbers.ts';
import { displayPath } from '../config/paths.ts';
import { ExperimentSchema, type ExperimentConfig } from '../config/schema.ts';
import type { ResolvedSweep } from '../config/sweep-load.ts';
import type { LrStart, SweepMatch } from '../config/sweep-schema.ts';
import type { LrSearchSettings } from './lr-search.ts';

export type AxisValue = string | number | boolean | null;

export interface SweepConfiguration {
  /** stable name built from the axis values, e.g. "mixer=rnn,norm=pre,precision.mode=fp16,…" */
  id: string;
  /** this configuration's value of every axis, by dotted key */
  axes: Record<string, AxisValue>;
  /** the resolved experiment; training.lr is the search's starting lr */
  config: ExperimentConfig;
  lrSearch: LrSearchSettings;
}

export interface DroppedConfiguration {
  id: string;
  /** index into the sweep's `filters` */
  filter: number;
}

export interface SweepPlan {
  name: string;
  description: string;
  file: string;
  baseFile: string;
  configurations: SweepConfiguration[];
  dropped: DroppedConfiguration[];
}

/**
 * Short labels for axis keys: the last segment ("mixer") where no other experiment key ends the
 * same way, else the whole key ("scaling.mode", since precision.mode exists too).
 */
function axisLabels(keys: readonly string[]): string[] {
  const last = (key: string) => key.slice(key.lastIndexOf('.') + 1);
  const all = [...new Set([...schemaKeys(ExperimentSchema), ...keys])];
  return keys.map((key) => (all.filter((other) => last(other) === last(key)).length > 1 ? key : last(key)));
}

function gridPoints(axes: readonly (readonly [string, readonly AxisValue[]])[]): Record<string, AxisValue>[] {
  return axes.reduce<Record<string, AxisValue>[]>(
    (points, [key, values]) => points.flatMap((point) => values.map((value) => ({ ...point, [key]: value }))),
    [{}],
  );
}

function dottedLayer(source: string, values: Record<string, unknown>): Layer {
  const pieces = Object.entries(values).map(([key, value]) => ({ source, data: nestDotted(key, value) }));
  return { source, data: mergeLayers(pieces).data };
}

function sameValue(actual: unknown, expected: AxisValue): boolean {
  if (typeof actual === 'number') return actual === coerceNumberLike(expected);
  return actual === expected;
}

/** Whether `config` satisfies every clause of `match`; `where` names the clause in errors. */
function matches(config: ExperimentConfig, match: SweepMatch, where: string): boolean {
  return Object.entries(match).every(([key, expected]) => {
    const actual = valueAt(config, key.split('.'));
    if (actual === undefined) throw new ReproError(`${where}: unknown experiment key "${key}"`);
    const options = Array.isArray(expected) ? expected : [expected];
    return options.some((option) => sameValue(actual, option));
  });
}

function startLr(start: LrStart, config: ExperimentConfig, where: string): number {
  if (typeof start === 'number') return start;
  const mode = config.scaling.mode;
  const forMode = start[mode];
  if (forMode === undefined) throw new ReproError(`${where}: no starting lr for scaling.mode ${mode}`);
  if (typeof forMode === 'number') return forMode;
  const optimiser = config.training.optimiser;
  const lr = forMode[optimiser];
  if (lr === undefined) throw new ReproError(`${where}: no starting lr for ${mode} ${optimiser}`);
  return lr;
}

/**
 * Expands a sweep into its configurations: the grid of `axes` over the base experiment, with
 * `set`, `steps` and matching `adjust` overrides, then the user's `--set` and flags, minus the
 * configurations a filter drops. A `--lr` flag replaces the search's starting lr.
 */
export function planSweep(
  resolved: ResolvedSweep,
  overrides: readonly string[] = [],
  flags: Partial<ExperimentFlags> = {},
): SweepPlan {
  const { sweep, file } = resolved;
  const src = displayPath(file);
  const baseFile = resolveCatalogueFile(sweep.base, 'experiment', {
    relativeTo: resolved.baseRelativeTo,
    context: `${src}: base`,
  });
  const baseLayers = fileChain(baseFile, 'experiment').layers;
  const { lr: userLr, ...otherFlags } = flags;
  const userLayers = overrideLayers(src, overrides, otherFlags);
  const fixed: Record<string, unknown> = { ...sweep.set };
  if (sweep.steps !== undefined) fixed['training.steps'] = sweep.steps;

  const axes = Object.entries(sweep.axes);
  for (const [key, values] of axes) {
    const seen = new Set(values.map((value) => JSON.stringify(value)));
    if (seen.size !== values.length) throw new ReproError(`${src}: axes.${key}: a value is listed twice`);
  }
  const labels = axisLabels(axes.map(([key]) => key));

  const configurations: SweepConfiguration[] = [];
  const dropped: DroppedConfiguration[] = [];
  for (const point of gridPoints(axes)) {
    const pointText = axes.map(([key]) => `${key}=${String(point[key])}`).join(',');
    const head = [...baseLayers, dottedLayer(`${src} (axes: ${pointText})`, point), dottedLayer(`${src} (set)`, fixed)];
    const unadjusted = validateLayers([...head, ...userLayers], src);
    const id = axes.map(([key], i) => `${labels[i]}=${String(point[key])}`).join(',') || sweep.name;
    const adjustLayers = sweep.adjust.flatMap((rule, i) =>
      matches(unadjusted, rule.when, `${src}: adjust[${i}].when`) ? [dottedLayer(`${src} (adjust[${i}])`, rule.set)] : [],
    );
    const config = adjustLayers.length ? validateLayers([...head, ...adjustLayers, ...userLayers], src) : unadjusted;
    const filter = sweep.filters.findIndex(
      (rule, i) =>
        matches(config, rule.where, `${src}: filters[${i}].where`) &&
        !matches(config, rule.drop_unless, `${src}: filters[${i}].drop_unless`),
    );
    if (filter >= 0) {
      dropped.push({ id, filter });
      continue;
    }
    const start =
      userLr !== undefined
        ? Number(coerceNumberLike(userLr))
        : startLr(sweep.lr_search.start, config, `${src}: lr_search.start (${id})`);
    if (!(start > 0)) throw new ReproError(`${src} (--lr ${String(userLr)}): expected a positive learning rate`);
    configurations.push({
      id,
      axes: point,
      config: { ...config, training: { ...config.training, lr: start } },
      lrSearch: {
        start,
        step: sweep.lr_search.step,
        threshold: sweep.lr_search.threshold,
        reps: sweep.lr_search.reps,
        maxTrials: sweep.lr_search.max_trials,
        lookahead: sweep.lr_search.lookahead,
      },
    });
  }
  return { name: sweep.name, description: sweep.description, file, baseFile, configurations, dropped };
}
