import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, found from this file's own location (works from any working directory). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('repo root not found');
    dir = parent;
  }
  return dir;
}

/** Where datasets are cached: --data-dir, else $REPRO_DATA_DIR, else <repo>/data. */
export function resolveDataDir(override?: string): string {
  if (override) return resolve(override);
  if (process.env.REPRO_DATA_DIR) return resolve(process.env.REPRO_DATA_DIR);
  return join(repoRoot(), 'data');
}

/** The text corpus shipped in the repository for offline runs. */
export function sampleDir(): string {
  return join(repoRoot(), 'data', 'sample');
}
