import { existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { download } from './download.ts';
import { prepareCharDataset, type PreparedMeta, type Split } from './prepare.ts';
import { extractMembers } from './unzip.ts';

/** experiments.md §C1: the author's re-host first, then the original (reported gone). */
export const WIKITEXT103_URLS = [
  'https://wikitext.smerity.com/wikitext-103-raw-v1.zip',
  'https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-raw-v1.zip',
] as const;
export const WIKITEXT103_BYTES = 191_984_949;

export function wikitextDir(dataDir: string): string {
  return join(dataDir, 'wikitext103');
}

export function wikitextSources(dataDir: string): Record<Split, string> {
  const dir = wikitextDir(dataDir);
  return { train: join(dir, 'train.txt'), valid: join(dir, 'valid.txt'), test: join(dir, 'test.txt') };
}

export function wikitextCacheDir(dataDir: string): string {
  return join(wikitextDir(dataDir), 'prepared');
}

/**
 * `repro data download wikitext103`: fetches the raw archive (resumable, size-checked), extracts
 * the three splits as train/valid/test.txt and prepares the character ids.
 */
export async function downloadWikitext103(
  dataDir: string,
  options: { urls?: readonly string[]; size?: number; onProgress?: (received: number, total: number | undefined) => void } = {},
): Promise<PreparedMeta> {
  const dir = wikitextDir(dataDir);
  const zipPath = join(dir, 'wikitext-103-raw-v1.zip');
  const sources = wikitextSources(dataDir);
  if (!(['train', 'valid', 'test'] as const).every((s) => existsSync(sources[s]))) {
    if (!existsSync(zipPath)) {
      await download({ urls: options.urls ?? WIKITEXT103_URLS, destination: zipPath, size: options.size ?? WIKITEXT103_BYTES, onProgress: options.onProgress });
    }
    await extractMembers(zipPath, {
      'wikitext-103-raw/wiki.train.raw': sources.train,
      'wikitext-103-raw/wiki.valid.raw': sources.valid,
      'wikitext-103-raw/wiki.test.raw': sources.test,
    });
    unlinkSync(zipPath);
  }
  return prepareCharDataset(sources, wikitextCacheDir(dataDir));
}
