import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const repro = new URL('../../bin/repro.js', import.meta.url).pathname;

describe('repro data', () => {
  it('prepare sample, then list shows it in the chosen data dir', () => {
    const dir = mkdtempSync(join(tmpdir(), 'repro-cli-'));
    const prepared = execFileSync(repro, ['data', 'prepare', 'sample', '--data-dir', dir], { encoding: 'utf8' });
    expect(prepared).toMatch(/^sample: vocab \d+, characters train \d+/);
    const listed = execFileSync(repro, ['data', 'list', '--data-dir', dir], { encoding: 'utf8' });
    expect(listed).toContain(`data dir: ${dir}`);
    expect(listed).toMatch(/sample .*vocab \d+/);
    expect(listed).toMatch(/wikitext103 +not downloaded/);
  });

  it('an unknown dataset is one line and exit code 2', () => {
    const r = spawnSync(repro, ['data', 'prepare', '/no/such/dir'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/no such dataset or directory/);
  });
});
