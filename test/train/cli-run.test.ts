import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readResults } from '../../src/results/csv.ts';
import { repro } from './cli.ts';
import { tempDir, unigramEntropyBits } from './helpers.ts';

/** repro run with results and run directories in `dir`, on the CPU, printing plain lines. */
function run(dir: string, ...args: string[]) {
  return repro('run', ...args, '--results', join(dir, 'results.csv'), '--runs-dir', join(dir, 'runs'), '--device', 'cpu', '--progress', 'lines');
}

describe('repro run (the real charlm-quick model)', () => {
  it('trains on data/sample below the unigram entropy and appends a row', () => {
    const dir = tempDir();
    const { code, stdout, stderr } = run(dir, 'charlm-quick', '--steps', '100', '--set', 'training.eval_batches=4', '--set', 'training.valid_interval=50');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^step 0 {2}valid loss /m);
    expect(stdout).toMatch(/^step 100\/100 {2}loss \d+\.\d+ {2}BPC \d+\.\d+ {2}\d+ tok\/s {2}ETA /m);
    expect(stdout).toMatch(/^run charlm-quick-\S+: ok, 100 steps in [\d.]+ s on cpu; BPC train [\d.]+ valid [\d.]+ test [\d.]+; row written to /m);
    const [row] = readResults(join(dir, 'results.csv')).rows;
    expect(row).toMatchObject({ experiment: 'charlm-quick', mixer: 'attention', status: 'ok', steps_done: '100', steps: '100', device: 'cpu' });
    expect(Number(row.valid_bpc)).toBeLessThan(unigramEntropyBits('valid') - 0.5);
    expect(row.git_commit).toMatch(/^[0-9a-f]{12}$/);
  });

  it('a huge lr diverges: a diverged row, one line saying so, exit code 0', () => {
    const dir = tempDir();
    const { code, stdout } = run(dir, 'charlm-quick', '--steps', '20', '--set', 'training.lr=1e30', '--set', 'training.log_interval=5', '--set', 'training.valid_interval=0');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^run charlm-quick-\S+: diverged at step \d+ \(non-finite loss\); row written to /m);
    const [row] = readResults(join(dir, 'results.csv')).rows;
    expect(row).toMatchObject({ status: 'diverged', valid_bpc: 'NaN', lr: '1e+30' });
  });

  it('--resume continues a run to the same result as an uninterrupted one', () => {
    const dir = tempDir();
    const common = ['--set', 'training.log_interval=5', '--set', 'training.valid_interval=0', '--set', 'training.eval_batches=2'];
    expect(run(dir, 'charlm-quick', '--steps', '20', ...common).code).toBe(0);
    expect(run(dir, 'charlm-quick', '--steps', '10', ...common).code).toBe(0);
    const [, half] = readResults(join(dir, 'results.csv')).rows;
    const resumed = run(dir, 'charlm-quick', '--steps', '20', ...common, '--resume', join(dir, 'runs', half.run_id));
    expect(resumed.code).toBe(0);
    const [whole, , continued] = readResults(join(dir, 'results.csv')).rows;
    expect(continued.run_id).toBe(half.run_id);
    expect(continued.steps_done).toBe('20');
    expect([continued.train_bpc, continued.valid_bpc, continued.test_bpc]).toEqual([whole.train_bpc, whole.valid_bpc, whole.test_bpc]);
  });

  it('bad YAML, bad --set values, a bad --resume and a missing dataset end with one line and exit code 2, writing nothing', () => {
    const dir = tempDir();
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'extends: base\ntraining: [steps: 3\n');
    const yaml = run(dir, broken);
    expect(yaml.code).toBe(2);
    expect(yaml.stderr).toMatch(/^repro: .*broken\.yaml.*\n$/);
    const set = run(dir, 'charlm-quick', '--set', 'training.steps=-3');
    expect(set.code).toBe(2);
    expect(set.stderr).toMatch(/^repro: .*training\.steps.*\n$/);
    const resume = run(dir, 'charlm-quick', '--resume', join(dir, 'nowhere'));
    expect(resume.code).toBe(2);
    expect(resume.stderr).toMatch(/^repro: .*nowhere: not a run directory/);
    const data = run(dir, 'charlm-attention', '--data-dir', join(dir, 'no-data'));
    expect(data.code).toBe(2);
    expect(data.stderr).toMatch(/^repro: dataset wikitext103 is not in .*no-data: run `repro data download wikitext103`/);
    expect(readdirSync(dir)).toEqual(['broken.yaml']);
  });
});
