import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const repro = new URL('../../bin/repro.js', import.meta.url).pathname;
const run = (args: string[], env: NodeJS.ProcessEnv = process.env) => execFileSync(repro, args, { encoding: 'utf8', env });

describe('repro data', () => {
  it('prepare sample, then list shows it in the chosen data dir', () => {
    const dir = mkdtempSync(join(tmpdir(), 'repro-cli-'));
    const prepared = run(['data', 'prepare', 'sample', '--data-dir', dir]);
    expect(prepared).toMatch(new RegExp(`^sample: prepared in ${join(dir, 'cache', 'sample')}: vocab \\d+, characters train [\\d,]+ / valid [\\d,]+ / test [\\d,]+\\n$`));
    expect(run(['data', 'prepare', 'sample', '--data-dir', dir])).toMatch(/^sample: up to date in /);
    const listed = run(['data', 'list', '--data-dir', dir]);
    expect(listed).toContain(`data dir: ${dir}\n`);
    expect(listed).toMatch(/wikitext103: not downloaded \(repro data download wikitext103\)/);
    expect(listed).toMatch(/sample: prepared\n  text .*data\/sample \(0\.38 MB\)\n  cache .*cache\/sample \([\d.]+ MB\): vocab \d+/);
  });

  it('takes the data dir from REPRO_DATA_DIR, prepares a text directory and lists it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'repro-cli-'));
    const text = mkdtempSync(join(tmpdir(), 'repro-cli-text-'));
    for (const split of ['train', 'valid', 'test']) writeFileSync(join(text, `${split}.txt`), `${split} text\n`);
    const env = { ...process.env, REPRO_DATA_DIR: dir };
    expect(run(['data', 'prepare', text], env)).toMatch(/: prepared in .*cache\/text-repro-cli-text-\w+-[0-9a-f]{12}: vocab 13, characters train 11 \/ valid 11 \/ test 10/);
    const listed = run(['data', 'list'], env);
    expect(listed).toContain(`data dir: ${dir}\n`);
    expect(listed).toContain(`text ${text}: prepared`);
  });

  it('an unknown dataset is one line and exit code 2', () => {
    const r = spawnSync(repro, ['data', 'prepare', '/no/such/dir'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('repro: /no/such/dir: not a directory (a text dataset is a directory holding train.txt, valid.txt and test.txt)\n');
  });
});
