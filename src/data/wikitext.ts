import { existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ReproError } from '../errors.ts';
import { download, type DownloadProgress } from './download.ts';
import { prepareCharDataset } from './prepare.ts';
import { SPLITS, type PreparedMeta, type Split } from './prepared.ts';
import { extractMembers } from './unzip.ts';

/** experiments.md §C1: the author's re-host first, then the original S3 address (reported gone). */
export const WIKITEXT103_URLS = [
  'https://wikitext.smerity.com/wikitext-103-raw-v1.zip',
  'https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-raw-v1.zip',
] as const;
/** Byte size of wikitext-103-raw-v1.zip (§A1). The MD5 quoted in §C1 is unverified, so only the
 * size is checked. */
export const WIKITEXT103_BYTES = 191_984_949;
export const WIKITEXT103_ARCHIVE = 'wikitext-103-raw-v1.zip';

export function wikitextDir(dataDir: string): string {
  return join(dataDir, 'wikitext103');
}

export function wikitextArchive(dataDir: string): string {
  return join(wikitextDir(dataDir), WIKITEXT103_ARCHIVE);
}

export function wikitextSources(dataDir: string): Record<Split, string> {
  const dir = wikitextDir(dataDir);
  return { train: join(dir, 'train.txt'), valid: join(dir, 'valid.txt'), test: join(dir, 'test.txt') };
}

export function wikitextCacheDir(dataDir: string): string {
  return join(wikitextDir(dataDir), 'prepared');
}

export interface WikitextDownloadOptions {
  /** Replaces the §C1 mirrors (tests point it at a local server). */
  readonly urls?: readonly string[];
  readonly size?: number;
  readonly onProgress?: DownloadProgress;
}

/**
 * `repro data download wikitext103`: fetches the raw archive (resumable, size-checked), extracts
 * its three splits as train/valid/test.txt, deletes the archive and prepares the character ids.
 * Splits already extracted are not downloaded again.
 */
export async function downloadWikitext103(dataDir: string, options: WikitextDownloadOptions = {}): Promise<PreparedMeta> {
  const zipPath = wikitextArchive(dataDir);
  const sources = wikitextSources(dataDir);
  if (!SPLITS.every((split) => existsSync(sources[split]))) {
    if (!existsSync(zipPath)) {
      await download({ urls: options.urls ?? WIKITEXT103_URLS, destination: zipPath, size: options.size ?? WIKITEXT103_BYTES, onProgress: options.onProgress });
    }
    try {
      await extractMembers(zipPath, {
        'wikitext-103-raw/wiki.train.raw': sources.train,
        'wikitext-103-raw/wiki.valid.raw': sources.valid,
        'wikitext-103-raw/wiki.test.raw': sources.test,
      });
    } catch (err) {
      // the archive passed the size check but is unreadable: keeping it would fail the same way forever
      unlinkSync(zipPath);
      throw new ReproError(`${(err as Error).message}; the archive was deleted, run \`repro data download wikitext103\` again`);
    }
    unlinkSync(zipPath);
  }
  return prepareCharDataset(sources, wikitextCacheDir(dataDir));
}
