import type { Argv } from 'yargs';
import { EXPERIMENT_FLAG_KEYS, type ExperimentFlags } from './load.ts';
import { DEVICES, OPTIMISERS, PRECISION_MODES, SCALING_MODES } from './schema.ts';

/** What `withExperimentFlags` adds to a command's parsed arguments. */
export interface ExperimentFlagArgs {
  set?: string[];
  scaling?: string;
  precision?: string;
  optimiser?: string;
  lr?: string;
  steps?: string;
  seed?: string;
  device?: string;
}

const GROUP = 'Experiment overrides:';

/** Adds `--set` and the common flags to a command, so `run`, `sweep`, `show` and `inspect` agree. */
export function withExperimentFlags<T>(yargs: Argv<T>): Argv<T & ExperimentFlagArgs> {
  return yargs
    .option('set', {
      type: 'string',
      array: true,
      // one value per --set, so `show --set a=1 NAME` does not read NAME as a second override
      nargs: 1,
      description: 'override one key, e.g. --set model.hidden=256 (repeatable; applied before the flags below)',
    })
    .option('scaling', { type: 'string', choices: SCALING_MODES, description: EXPERIMENT_FLAG_KEYS.scaling })
    .option('precision', { type: 'string', choices: PRECISION_MODES, description: EXPERIMENT_FLAG_KEYS.precision })
    .option('optimiser', { type: 'string', choices: OPTIMISERS, description: EXPERIMENT_FLAG_KEYS.optimiser })
    .option('lr', { type: 'string', description: `${EXPERIMENT_FLAG_KEYS.lr} (a number or a power of two such as 2^-10)` })
    .option('steps', { type: 'string', description: `${EXPERIMENT_FLAG_KEYS.steps} (e.g. 1000 or 2^14)` })
    .option('seed', { type: 'string', description: EXPERIMENT_FLAG_KEYS.seed })
    .option('device', { type: 'string', choices: DEVICES, description: EXPERIMENT_FLAG_KEYS.device })
    .group(['set', 'scaling', 'precision', 'optimiser', 'lr', 'steps', 'seed', 'device'], GROUP) as Argv<
    T & ExperimentFlagArgs
  >;
}

function pick<const V extends readonly string[]>(value: string | undefined, allowed: V): V[number] | undefined {
  return value !== undefined && (allowed as readonly string[]).includes(value) ? (value as V[number]) : undefined;
}

/** The `--set` list and flags from parsed arguments, ready for `loadExperiment(name, overrides, flags)`. */
export function experimentOverrides(argv: ExperimentFlagArgs): { overrides: string[]; flags: Partial<ExperimentFlags> } {
  const flags: Partial<ExperimentFlags> = {};
  const scaling = pick(argv.scaling, SCALING_MODES);
  const precision = pick(argv.precision, PRECISION_MODES);
  const optimiser = pick(argv.optimiser, OPTIMISERS);
  const device = pick(argv.device, DEVICES);
  if (scaling) flags.scaling = scaling;
  if (precision) flags.precision = precision;
  if (optimiser) flags.optimiser = optimiser;
  if (device) flags.device = device;
  if (argv.lr !== undefined) flags.lr = argv.lr;
  if (argv.steps !== undefined) flags.steps = argv.steps;
  if (argv.seed !== undefined) flags.seed = argv.seed;
  return { overrides: (argv.set ?? []).map(String), flags };
}
