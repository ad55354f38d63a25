import { join } from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { dumpExperiment, loadExperiment } from '../../src/config/load.ts';
import { ExperimentSchema } from '../../src/config/schema.ts';
import { reproErrorOf, writeFiles } from './helpers.ts';

/** A user's experiment file that extends the shipped quick experiment with `body`. */
function userFile(body: string): string {
  const dir = writeFiles({ 'mine.yaml': `extends: charlm-quick\n${body}` });
  return join(dir, 'mine.yaml');
}

describe('loadExperiment: resolution', () => {
  it('finds shipped experiments by name and by folder-qualified name', () => {
    const byName = loadExperiment('charlm-rnn');
    expect(byName.file).toMatch(/experiments[/\\]charlm[/\\]charlm-rnn\.yaml$/);
    expect(byName.config.model.mixer).toBe('rnn');
    expect(byName.config.model.depth).toBe(2);
    expect(loadExperiment('charlm/charlm-rnn').config).toEqual(byName.config);
    expect(byName.chain.map((f) => f.replace(/^.*experiments[/\\]/, ''))).toEqual(['charlm/base.yaml', 'charlm/charlm-rnn.yaml']);
  });

  it('takes name from the file and does not inherit the parent name or description', () => {
    const file = userFile('model: { hidden: 32 }\n');
    const { config } = loadExperiment(file);
    expect(config.name).toBe('mine');
    expect(config.description).toBe('');
    expect(config.model.hidden).toBe(32);
    expect(config.model.depth).toBe(2); // from charlm-quick
    expect(config.training.lr_decay).toBe(2 ** -16); // from base
  });

  it('deep-merges extends chains, the child winning, across a relative path', () => {
    const dir = writeFiles({
      'parent.yaml': 'extends: charlm-quick\nmodel: { hidden: 96, attention: { heads: 3 } }\ntraining: { steps: 50 }\n',
      'child.yaml': 'extends: ./parent.yaml\nname: kid\nmodel: { attention: { head_size: 16 } }\ntraining: { steps: 70 }\n',
    });
    const { config, chain } = loadExperiment(join(dir, 'child.yaml'));
    expect(config.name).toBe('kid');
    expect(config.model.hidden).toBe(96);
    expect(config.model.attention).toEqual({ heads: 3, head_size: 16, frequencies: 32, max_period: 128, mask_value: -30000 });
    expect(config.training.steps).toBe(70);
    expect(chain).toHaveLength(4);
  });

  it('reports an extends cycle with the files involved', () => {
    const dir = writeFiles({ 'a.yaml': 'extends: ./b.yaml\n', 'b.yaml': 'extends: ./a.yaml\n' });
    const message = reproErrorOf(() => loadExperiment(join(dir, 'a.yaml')));
    expect(message).toMatch(/extends: cycle .*a\.yaml -> .*b\.yaml -> .*a\.yaml/);
  });

  it('reports unknown names and missing files', () => {
    expect(reproErrorOf(() => loadExperiment('no-such-experiment'))).toContain('unknown experiment "no-such-experiment"');
    expect(reproErrorOf(() => loadExperiment('/nonexistent/x.yaml'))).toContain('file not found');
    const dir = writeFiles({ 'bad-parent.yaml': 'extends: nothing-like-this\n' });
    const message = reproErrorOf(() => loadExperiment(join(dir, 'bad-parent.yaml')));
    expect(message).toMatch(/bad-parent\.yaml: extends: unknown experiment "nothing-like-this"/);
  });
});

describe('loadExperiment: one-line errors naming file and key', () => {
  it('unknown key', () => {
    const file = userFile('model: { mixr: conv }\n');
    const message = reproErrorOf(() => loadExperiment(file));
    expect(message).toContain(`${file}: model.mixr: unknown key; expected one of kind|mixer|`);
  });

  it('wrong type', () => {
    const file = userFile('training: { steps: lots }\n');
    expect(reproErrorOf(() => loadExperiment(file))).toBe(`${file}: training.steps: expected a number, got "lots"`);
  });

  it('value outside the allowed set', () => {
    const file = userFile('model: { mixer: lstm }\n');
    expect(reproErrorOf(() => loadExperiment(file))).toBe(
      `${file}: model.mixer: expected one of attention|conv|rnn, got "lstm"`,
    );
  });

  it('impossible values', () => {
    expect(reproErrorOf(() => loadExperiment(userFile('training: { lr: 0 }\n')))).toMatch(/training\.lr: expected a number > 0, got 0$/);
    expect(reproErrorOf(() => loadExperiment(userFile('model: { alpha: 1.5 }\n')))).toMatch(/model\.alpha: expected a number <= 1, got 1\.5$/);
    expect(reproErrorOf(() => loadExperiment(userFile('data: { overlap: 128 }\n')))).toMatch(
      /data\.overlap: expected less than data\.sequence_length \(128\), got 128$/,
    );
    expect(reproErrorOf(() => loadExperiment(userFile('model: { depth: 2.5 }\n')))).toMatch(/model\.depth: expected an integer, got 2\.5$/);
    expect(reproErrorOf(() => loadExperiment(userFile('scaling: { mode: unit }\nmodel: { alpha: none }\n')))).toMatch(
      /model\.alpha: .*unit scaling needs a residual alpha, got "none"$/,
    );
    expect(reproErrorOf(() => loadExperiment(userFile('data: { dataset: text }\n')))).toMatch(/data\.path: expected a directory/);
  });

  it('names the ancestor file that holds the bad value', () => {
    const dir = writeFiles({
      'parent.yaml': 'extends: charlm-quick\nprecision: { mode: fp12 }\n',
      'child.yaml': 'extends: ./parent.yaml\n',
    });
    const message = reproErrorOf(() => loadExperiment(join(dir, 'child.yaml')));
    expect(message).toBe(`${join(dir, 'parent.yaml')}: precision.mode: expected one of fp32|fp16|bf16|fp8, got "fp12"`);
  });

  it('missing required key in a file that extends nothing', () => {
    const dir = writeFiles({ 'bare.yaml': 'seed: 1\n' });
    expect(reproErrorOf(() => loadExperiment(join(dir, 'bare.yaml')))).toMatch(/bare\.yaml: device: missing \(required\)/);
  });

  it('broken YAML names file, line and column', () => {
    const dir = writeFiles({ 'broken.yaml': 'extends: charlm-quick\nmodel:\n  hidden: [64\n  depth: 2\n' });
    const message = reproErrorOf(() => loadExperiment(join(dir, 'broken.yaml')));
    expect(message).toMatch(new RegExp(`^${join(dir, 'broken.yaml')}:\\d+:\\d+: invalid YAML: `));
    const dup = writeFiles({ 'dup.yaml': 'seed: 1\nseed: 2\n' });
    expect(reproErrorOf(() => loadExperiment(join(dup, 'dup.yaml')))).toMatch(/dup\.yaml:2:1: invalid YAML: Map keys must be unique/);
  });

  it('a top level that is not a mapping', () => {
    const dir = writeFiles({ 'list.yaml': '- 1\n- 2\n' });
    expect(reproErrorOf(() => loadExperiment(join(dir, 'list.yaml')))).toMatch(/list\.yaml: expected a mapping/);
  });

  it('extends that is not a string', () => {
    const dir = writeFiles({ 'num.yaml': 'extends: 5\n' });
    expect(reproErrorOf(() => loadExperiment(join(dir, 'num.yaml')))).toMatch(/num\.yaml: extends: expected an experiment name/);
  });
});

describe('loadExperiment: --set overrides and flags', () => {
  it('applies --set values parsed as YAML scalars, then flags', () => {
    const { config, overrides } = loadExperiment(
      'charlm-quick',
      ['model.hidden=48', 'training.lr=2^-7', 'training.eval_batches=null', 'precision.allow_tf32=true'],
      { scaling: 'unit', precision: 'fp16', optimiser: 'sgdm', steps: '2^5', seed: '7', device: 'cpu', lr: '2**-3' },
    );
    expect(config.model.hidden).toBe(48);
    expect(config.training.eval_batches).toBeNull();
    expect(config.precision.allow_tf32).toBe(true);
    expect(config.scaling.mode).toBe('unit');
    expect(config.precision.mode).toBe('fp16');
    expect(config.training.optimiser).toBe('sgdm');
    expect(config.training.steps).toBe(32);
    expect(config.seed).toBe(7);
    expect(config.device).toBe('cpu');
    expect(config.training.lr).toBe(0.125); // the flag wins over --set
    expect(overrides).toHaveLength(4);
  });

  it('bad --set key is named with the file and the override', () => {
    const message = reproErrorOf(() => loadExperiment('charlm-quick', ['model.attention.heds=4']));
    expect(message).toMatch(/^experiments[/\\]charlm[/\\]charlm-quick\.yaml \(--set model\.attention\.heds=4\): model\.attention\.heds: unknown key; expected one of heads\|/);
  });

  it('bad --set value is named with the file and the key', () => {
    const message = reproErrorOf(() => loadExperiment('charlm-quick', ['precision.rounding=up']));
    expect(message).toMatch(
      /charlm-quick\.yaml \(--set precision\.rounding=up\): precision\.rounding: expected one of stochastic\|nearest, got "up"$/,
    );
  });

  it('malformed --set and bad flag values', () => {
    expect(reproErrorOf(() => loadExperiment('charlm-quick', ['model.hidden']))).toMatch(/--set model\.hidden\): expected --set dotted\.key=value/);
    expect(reproErrorOf(() => loadExperiment('charlm-quick', ['=3']))).toMatch(/expected --set dotted\.key=value/);
    expect(reproErrorOf(() => loadExperiment('charlm-quick', [], { lr: '2^x' }))).toMatch(/\(--lr 2\^x\): training\.lr: expected a number, got "2\^x"$/);
    expect(reproErrorOf(() => loadExperiment('charlm-quick', [], { steps: '0' }))).toMatch(/training\.steps: expected a number >= 1/);
  });

  it('a --set may create a nested section such as dynamic loss scaling', () => {
    const { config } = loadExperiment('charlm-quick', ['training.dynamic_loss_scale.init=1024']);
    expect(config.training.dynamic_loss_scale).toEqual({ init: 1024, growth_interval: 2000, factor: 2 });
    const on = loadExperiment('charlm-quick', ['training.dynamic_loss_scale=true']).config.training.dynamic_loss_scale;
    expect(on).toEqual({ init: 65536, growth_interval: 2000, factor: 2 });
    expect(loadExperiment('charlm-quick').config.training.dynamic_loss_scale).toBe(false);
  });
});

describe('power-of-two strings and dumping', () => {
  it('accepts power-of-two strings wherever a number goes', () => {
    const { config } = loadExperiment(userFile('training: { lr: "2**-6", steps: 2^6, valid_interval: 2^5 }\nmodel: { alpha: 2^-1 }\n'));
    expect(config.training.lr).toBe(2 ** -6);
    expect(config.training.steps).toBe(64);
    expect(config.training.valid_interval).toBe(32);
    expect(config.model.alpha).toBe(0.5);
    expect(loadExperiment('charlm-attention').config.training.lr_decay).toBe(2 ** -16);
  });

  it('dumpExperiment gives YAML that loads back to the same config', () => {
    const { config } = loadExperiment('charlm-attention-unit-fp16', ['training.dynamic_loss_scale=true']);
    const text = dumpExperiment(config);
    expect(ExperimentSchema.parse(YAML.parse(text))).toEqual(config);
    const dir = writeFiles({ 'dumped.yaml': text });
    expect(loadExperiment(join(dir, 'dumped.yaml')).config).toEqual(config);
  });
});
