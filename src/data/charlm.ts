import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ReproError } from '../errors.ts';
import { resolveDataDir, sampleDir } from './paths.ts';
import { prepareCharDataset } from './prepare.ts';
import { SPLITS, isPrepared, readMeta, readPrepared, type CharDataset, type PreparedMeta, type Split } from './prepared.ts';
import { wikitextCacheDir, wikitextSources } from './wikitext.ts';

export type { CharDataset, Split } from './prepared.ts';

export interface DatasetSpec {
  readonly kind: 'wikitext103' | 'sample' | 'text';
  /** Directory with train.txt, valid.txt and test.txt (kind `text` only). */
  readonly path?: string | null;
}

/** Where a dataset's text lives and where its prepared ids are cached. */
export interface DatasetLocation {
  readonly name: string;
  readonly sources: Record<Split, string>;
  readonly cacheDir: string;
}

export function textSources(dir: string): Record<Split, string> {
  return { train: join(dir, 'train.txt'), valid: join(dir, 'valid.txt'), test: join(dir, 'test.txt') };
}

/**
 * Where a text directory's prepared ids are cached: inside the data dir (git-ignored), under a
 * name made of the directory's base name and a hash of its absolute path, so two directories
 * with the same name do not share a cache.
 */
export function textCacheDir(dir: string, dataDir: string): string {
  const abs = resolve(dir);
  if (abs === resolve(sampleDir())) return join(dataDir, 'cache', 'sample');
  const tag = createHash('sha256').update(abs).digest('hex').slice(0, 12);
  return join(dataDir, 'cache', `text-${basename(abs)}-${tag}`);
}

export function locateDataset(spec: DatasetSpec, dataDirOverride?: string): DatasetLocation {
  const dataDir = resolveDataDir(dataDirOverride);
  if (spec.kind === 'wikitext103') return { name: 'wikitext103', sources: wikitextSources(dataDir), cacheDir: wikitextCacheDir(dataDir) };
  if (spec.kind === 'sample') return { name: 'sample', sources: textSources(sampleDir()), cacheDir: textCacheDir(sampleDir(), dataDir) };
  if (!spec.path) throw new ReproError('data.path: a text dataset needs a directory holding train.txt, valid.txt and test.txt');
  const dir = resolve(spec.path);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ReproError(`${spec.path}: not a directory (a text dataset is a directory holding train.txt, valid.txt and test.txt)`);
  return { name: spec.path, sources: textSources(dir), cacheDir: textCacheDir(dir, dataDir) };
}

function checkSources(spec: DatasetSpec, location: DatasetLocation, dataDirOverride?: string): void {
  const missing = SPLITS.filter((split) => !existsSync(location.sources[split]));
  if (missing.length === 0) return;
  if (spec.kind === 'wikitext103') {
    throw new ReproError(
      `dataset wikitext103 is not in ${resolveDataDir(dataDirOverride)}: run \`repro data download wikitext103\` (or use data.dataset: sample)`,
    );
  }
  throw new ReproError(`${location.sources[missing[0]]}: missing (a text dataset needs train.txt, valid.txt and test.txt)`);
}

/**
 * Prepares a dataset's character ids unless a fresh cache exists (or `force`); returns the cache's
 * meta data and location.
 */
export async function prepareDataset(
  spec: DatasetSpec,
  dataDirOverride?: string,
  options: { force?: boolean } = {},
): Promise<{ meta: PreparedMeta; location: DatasetLocation; rebuilt: boolean }> {
  const location = locateDataset(spec, dataDirOverride);
  checkSources(spec, location, dataDirOverride);
  if (!options.force && isPrepared(location.cacheDir, location.sources)) {
    const meta = readMeta(location.cacheDir);
    if (meta) return { meta, location, rebuilt: false };
  }
  return { meta: prepareCharDataset(location.sources, location.cacheDir), location, rebuilt: true };
}

/**
 * The trainer's entry point: a character dataset's vocabulary and id streams, preparing the
 * cache on first use (or when a source file changed). WikiText-103 must have been downloaded.
 */
export async function loadCharDataset(spec: DatasetSpec, dataDirOverride?: string): Promise<CharDataset> {
  const { location } = await prepareDataset(spec, dataDirOverride);
  return readPrepared(location.cacheDir);
}
