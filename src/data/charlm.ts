import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ReproError } from '../errors.ts';
import { resolveDataDir, sampleDir } from './paths.ts';
import { SPLITS, isPrepared, prepareCharDataset, readPrepared, type CharDataset, type Split } from './prepare.ts';
import { wikitextCacheDir, wikitextSources } from './wikitext.ts';

export type { CharDataset, Split } from './prepare.ts';

export interface DatasetSpec {
  readonly kind: 'wikitext103' | 'sample' | 'text';
  /** Directory with train.txt, valid.txt and test.txt (kind text). */
  readonly path?: string | null;
}

function textSources(dir: string): Record<Split, string> {
  const sources = { train: join(dir, 'train.txt'), valid: join(dir, 'valid.txt'), test: join(dir, 'test.txt') };
  for (const s of SPLITS) if (!existsSync(sources[s])) throw new ReproError(`${sources[s]}: missing (a text dataset needs train.txt, valid.txt and test.txt)`);
  return sources;
}

/** Where a text directory's prepared ids are cached (inside the data dir, git-ignored). */
export function textCacheDir(dir: string, dataDir: string): string {
  const abs = resolve(dir);
  if (abs === resolve(sampleDir())) return join(dataDir, 'cache', 'sample');
  const tag = Buffer.from(abs).toString('base64url').slice(-40);
  return join(dataDir, 'cache', `text-${basename(abs)}-${tag}`);
}

/**
 * Loads a character dataset's vocabulary and id streams, preparing `sample`/`text` datasets on
 * first use. WikiText-103 must have been downloaded first.
 */
export function loadCharDataset(spec: DatasetSpec, dataDirOverride?: string): CharDataset {
  const dataDir = resolveDataDir(dataDirOverride);
  if (spec.kind === 'wikitext103') {
    const cache = wikitextCacheDir(dataDir);
    const sources = wikitextSources(dataDir);
    if (!existsSync(sources.train)) {
      throw new ReproError(`dataset wikitext103 is not in ${dataDir}: run \`repro data download wikitext103\` (or use data.dataset: sample)`);
    }
    if (!isPrepared(cache, sources)) prepareCharDataset(sources, cache);
    return readPrepared(cache);
  }
  const dir = spec.kind === 'sample' ? sampleDir() : spec.path;
  if (!dir) throw new ReproError('data.path: a text dataset needs a directory');
  const sources = textSources(dir);
  const cache = textCacheDir(dir, dataDir);
  if (!isPrepared(cache, sources)) prepareCharDataset(sources, cache);
  return readPrepared(cache);
}
