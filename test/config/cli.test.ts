import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadExperiment } from '../../src/config/load.ts';
import { ExperimentSchema } from '../../src/config/schema.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function repro(...args: string[]) {
  const result = spawnSync(process.execPath, ['bin/repro.js', ...args], { cwd: ROOT, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('repro show / list', () => {
  it('show prints the resolved experiment as valid YAML, with --set and flags applied', () => {
    const { code, stdout, stderr } = repro('show', 'charlm-quick', '--set', 'model.depth=3', '--scaling', 'unit', '--lr', '2^-5');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const config = ExperimentSchema.parse(YAML.parse(stdout));
    expect(config).toEqual(loadExperiment('charlm-quick', ['model.depth=3'], { scaling: 'unit', lr: '2^-5' }).config);
    expect(config.model.depth).toBe(3);
    expect(config.training.lr).toBe(2 ** -5);
  });

  it('show reports a bad --set value in one line with exit code 2', () => {
    const { code, stdout, stderr } = repro('show', 'charlm-quick', '--set', 'model.norm=middle');
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^repro: experiments\/charlm\/charlm-quick\.yaml \(--set model\.norm=middle\): model\.norm: expected one of pre\|post\|none, got "middle"\n$/);
  });

  it('show of a sweep prints its definition and planned configurations as YAML', () => {
    const { code, stdout } = repro('show', 'sweep-quick');
    expect(code).toBe(0);
    const parsed = YAML.parse(stdout) as { base: string; plan: { id: string; lr_start: string }[] };
    expect(parsed.base).toBe('charlm-quick');
    expect(parsed.plan).toEqual([
      { id: 'scaling.mode=regular', lr_start: '2^-9' },
      { id: 'scaling.mode=unit', lr_start: '2^-6' },
    ]);
  });

  it('list names experiments and sweeps with their descriptions', () => {
    const { code, stdout } = repro('list');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^\s+charlm-quick\s+Small attention char-LM/m);
    expect(stdout).toMatch(/^\s+sweep-paper\s+§A8/m);
    expect(stdout.indexOf('Sweeps')).toBeGreaterThan(stdout.indexOf('charlm-rnn'));
  });
});
