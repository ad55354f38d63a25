import { execFileSync } from 'node:child_process';
import { repoRoot } from '../data/paths.ts';

let cached: string | undefined;

/** The checkout's HEAD commit (12 hex digits) for the results row; empty outside a git checkout. */
export function gitCommit(): string {
  if (cached === undefined) {
    try {
      cached = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: repoRoot(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      cached = '';
    }
  }
  return cached;
}
