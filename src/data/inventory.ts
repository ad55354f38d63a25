import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { sampleDir } from './paths.ts';
import { SPLITS, isPrepared, readMeta, type PreparedMeta, type Split } from './prepared.ts';
import { textSources } from './charlm.ts';
import { WIKITEXT103_BYTES, wikitextArchive, wikitextCacheDir, wikitextSources } from './wikitext.ts';

/** What `repro data list` reports about one dataset. */
export interface DatasetEntry {
  readonly name: string;
  /** Where the text lives. */
  readonly sourceDir: string;
  readonly cacheDir: string;
  readonly state: 'prepared' | 'stale' | 'not prepared' | 'not downloaded' | 'partial download';
  readonly meta: PreparedMeta | null;
  /** Bytes of the three source files, and of the prepared cache. */
  readonly sourceBytes: number;
  readonly cacheBytes: number;
  /** Bytes of an interrupted download (the .part file), when there is one. */
  readonly partialBytes?: number;
  readonly expectedBytes?: number;
}

function fileBytes(path: string): number {
  return existsSync(path) ? statSync(path).size : 0;
}

function dirBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile())
    .reduce((sum, e) => sum + statSync(join(dir, e.name)).size, 0);
}

function describeCache(name: string, sourceDir: string, sources: Record<Split, string>, cacheDir: string): DatasetEntry {
  const haveSources = SPLITS.every((split) => existsSync(sources[split]));
  const meta = readMeta(cacheDir);
  const state = !meta ? 'not prepared' : haveSources && isPrepared(cacheDir, sources) ? 'prepared' : 'stale';
  const sourceBytes = SPLITS.reduce((sum, split) => sum + fileBytes(sources[split]), 0);
  return { name, sourceDir, cacheDir, state, meta, sourceBytes, cacheBytes: dirBytes(cacheDir) };
}

/** Every dataset known in `dataDir`: WikiText-103, the shipped sample and prepared text directories. */
export function listDatasets(dataDir: string): DatasetEntry[] {
  const entries: DatasetEntry[] = [];
  const wikiSources = wikitextSources(dataDir);
  const wiki = describeCache('wikitext103', join(dataDir, 'wikitext103'), wikiSources, wikitextCacheDir(dataDir));
  if (SPLITS.every((split) => existsSync(wikiSources[split]))) entries.push(wiki);
  else {
    const part = `${wikitextArchive(dataDir)}.part`;
    const partialBytes = fileBytes(part);
    const state = partialBytes > 0 ? 'partial download' : 'not downloaded';
    entries.push({ ...wiki, state, meta: null, partialBytes, expectedBytes: WIKITEXT103_BYTES });
  }
  const cacheRoot = join(dataDir, 'cache');
  entries.push(describeCache('sample', sampleDir(), textSources(sampleDir()), join(cacheRoot, 'sample')));
  if (existsSync(cacheRoot)) {
    for (const dir of readdirSync(cacheRoot).filter((e) => e.startsWith('text-')).sort()) {
      const cacheDir = join(cacheRoot, dir);
      const meta = readMeta(cacheDir);
      if (!meta) continue;
      const sourceDir = dirname(meta.sources.train.path);
      entries.push(describeCache(`text ${sourceDir}`, sourceDir, textSources(sourceDir), cacheDir));
    }
  }
  return entries;
}
