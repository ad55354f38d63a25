import { fileURLToPath } from 'node:url';
import { isAbsolute, join, relative } from 'node:path';

/** The repository checkout this code runs from (experiment files ship inside it). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const EXPERIMENTS_DIR = join(REPO_ROOT, 'experiments');
export const SWEEPS_DIR = join(EXPERIMENTS_DIR, 'sweeps');

/** A path as the user should see it in messages: relative to the working directory when inside it. */
export function displayPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file;
}
