import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { dumpExperiment } from '../config/load.ts';
import { ExperimentSchema, type ExperimentConfig } from '../config/schema.ts';
import { writeFileAtomic } from '../data/atomic.ts';
import { ReproError } from '../errors.ts';

/*
 * A run's directory, runs/<run_id>/ (git-ignored): config.yaml (the resolved experiment),
 * log.jsonl (events), checkpoint.bin (the latest checkpoint).
 */

export const RUN_FILES = { config: 'config.yaml', log: 'log.jsonl', checkpoint: 'checkpoint.bin' } as const;

function timestamp(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}${two(date.getMonth() + 1)}${two(date.getDate())}-${two(date.getHours())}${two(date.getMinutes())}${two(date.getSeconds())}`;
}

/** e.g. "charlm-quick-20260528-141503-3fa9": sortable by start time, unique across parallel runs. */
export function newRunId(name: string, now = new Date()): string {
  return `${name}-${timestamp(now)}-${randomBytes(4).toString('hex')}`;
}

export function createRunDir(runsDir: string, runId: string, config: ExperimentConfig): string {
  const dir = join(runsDir, runId);
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, RUN_FILES.config), dumpExperiment(config));
  return dir;
}

/** The saved experiment of a run directory (for --resume). */
export function readRunConfig(dir: string): ExperimentConfig {
  const file = join(dir, RUN_FILES.config);
  if (!existsSync(file)) throw new ReproError(`${dir}: not a run directory (no ${RUN_FILES.config})`);
  const parsed = ExperimentSchema.safeParse(YAML.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new ReproError(`${file}: not a valid experiment (${parsed.error.issues[0]?.message ?? 'invalid'})`);
  return parsed.data;
}

/** Keys a resumed run may change: how long it runs and how it reports, not what it trains. */
const RESUMABLE_CHANGES = new Set([
  'device',
  'training.steps',
  'training.log_interval',
  'training.checkpoint_interval',
  'training.valid_interval',
  'training.eval_batches',
]);

function flatten(value: unknown, prefix: string, into: Map<string, string>): Map<string, string> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, into);
  } else into.set(prefix, JSON.stringify(value));
  return into;
}

/** Throws unless `requested` trains the same model the same way as the run directory's config. */
export function checkResumable(saved: ExperimentConfig, requested: ExperimentConfig, dir: string): void {
  const a = flatten(saved, '', new Map());
  const b = flatten(requested, '', new Map());
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    if (RESUMABLE_CHANGES.has(key) || a.get(key) === b.get(key)) continue;
    throw new ReproError(`--resume ${dir}: ${key} is ${a.get(key) ?? 'unset'} in the run, ${b.get(key) ?? 'unset'} now (only steps, device and reporting may change)`);
  }
}
