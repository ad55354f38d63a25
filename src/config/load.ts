import YAML from 'yaml';
import { resolveCatalogueFile } from './catalogue.ts';
import { fileChain } from './chain.ts';
import { validationError } from './issues.ts';
import { mergeLayers, nestDotted, setOverrideLayer, type Layer } from './layers.ts';
import { displayPath } from './paths.ts';
import {
  ExperimentSchema,
  type Device,
  type ExperimentConfig,
  type Optimiser,
  type PrecisionMode,
  type ScalingMode,
} from './schema.ts';

/** The common command-line flags; each is shorthand for one config key (see EXPERIMENT_FLAG_KEYS). */
export interface ExperimentFlags {
  scaling: ScalingMode;
  precision: PrecisionMode;
  optimiser: Optimiser;
  lr: number | string;
  steps: number | string;
  seed: number | string;
  device: Device;
}

export const EXPERIMENT_FLAG_KEYS: Readonly<Record<keyof ExperimentFlags, string>> = {
  scaling: 'scaling.mode',
  precision: 'precision.mode',
  optimiser: 'training.optimiser',
  lr: 'training.lr',
  steps: 'training.steps',
  seed: 'seed',
  device: 'device',
};

export interface ResolvedExperiment {
  config: ExperimentConfig;
  /** the experiment file that was asked for */
  file: string;
  /** that file and its `extends` ancestors, most distant ancestor first */
  chain: string[];
  /** the `--set` overrides applied, in order */
  overrides: string[];
  /** the common flags applied after them */
  flags: Partial<ExperimentFlags>;
}

/** The layers for `--set` overrides and the common flags, applied in that order. */
export function overrideLayers(
  sourcePrefix: string,
  overrides: readonly string[],
  flags: Partial<ExperimentFlags>,
): Layer[] {
  const layers = overrides.map((assignment) => setOverrideLayer(assignment, sourcePrefix));
  for (const [flag, key] of Object.entries(EXPERIMENT_FLAG_KEYS) as [keyof ExperimentFlags, string][]) {
    const value = flags[flag];
    if (value !== undefined) layers.push({ source: `${sourcePrefix} (--${flag} ${value})`, data: nestDotted(key, value) });
  }
  return layers;
}

/** Merges layers and validates the result; an error names the layer that supplied the bad value. */
export function validateLayers(layers: readonly Layer[], fallbackSource: string): ExperimentConfig {
  const merged = mergeLayers(layers);
  const parsed = ExperimentSchema.safeParse(merged.data);
  if (!parsed.success)
    throw validationError(parsed.error, merged.data, ExperimentSchema, (key) => merged.sources.get(key) ?? fallbackSource);
  return parsed.data;
}

/**
 * Loads an experiment by name (found under experiments/) or by .yaml path, follows its `extends`
 * chain, applies `--set key=value` overrides and then the common flags, and validates the result.
 */
export function loadExperiment(
  nameOrPath: string,
  overrides: readonly string[] = [],
  flags: Partial<ExperimentFlags> = {},
): ResolvedExperiment {
  const file = resolveCatalogueFile(nameOrPath, 'experiment');
  const chain = fileChain(file, 'experiment');
  const layers = [...chain.layers, ...overrideLayers(displayPath(file), overrides, flags)];
  return {
    config: validateLayers(layers, displayPath(file)),
    file,
    chain: chain.files,
    overrides: [...overrides],
    flags: { ...flags },
  };
}

/** The config as YAML, in schema key order; loading the text again gives the same config. */
export function dumpExperiment(config: ExperimentConfig): string {
  return YAML.stringify(config, { lineWidth: 0 });
}
