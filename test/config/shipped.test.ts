import { describe, expect, it } from 'vitest';
import { listExperiments, listSweeps } from '../../src/config/catalogue.ts';
import { loadExperiment } from '../../src/config/load.ts';
import { loadSweep } from '../../src/config/sweep-load.ts';
import { planSweep } from '../../src/train/sweep-plan.ts';

describe('shipped experiment files', () => {
  const experiments = listExperiments();

  it('are listed with a one-line description each', () => {
    expect(experiments.length).toBeGreaterThanOrEqual(8);
    for (const entry of experiments) {
      expect(entry.description, entry.name).toMatch(/^\S.*$/);
      expect(entry.description).not.toContain('\n');
    }
    const names = experiments.map((e) => e.name);
    for (const name of ['base', 'charlm-attention', 'charlm-conv', 'charlm-rnn', 'charlm-quick', 'charlm-attention-post'])
      expect(names).toContain(name);
  });

  it.each(experiments.map((e) => [e.name]))('%s validates', (name) => {
    const { config } = loadExperiment(name);
    expect(config.name).toBe(name.split('/').pop());
  });

  it('base restates Table A.3', () => {
    const { config } = loadExperiment('base');
    expect(config.data).toEqual({ dataset: 'wikitext103', path: null, sequences: 8, sequence_length: 256, overlap: 32 });
    expect(config.model).toMatchObject({ hidden: 128, depth: 8, ffn_multiple: 4, norm: 'pre', alpha: 'mean', layernorm_eps: 1e-3 });
    expect(config.model.attention).toEqual({ heads: 2, head_size: 64, frequencies: 128, max_period: 1024, mask_value: -3e4 });
    expect(config.model.conv).toEqual({ kernel: 7, groups: 8 });
    expect(config.model.rnn).toEqual({ rebias: 1 });
    expect(config.training).toMatchObject({
      optimiser: 'adamw',
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-7,
      weight_decay: 0,
      lr_decay: 2 ** -16,
      steps: 2 ** 19,
      valid_interval: 2 ** 14,
      loss_scale: 1,
    });
  });

  it('use the §A9 median learning rates', () => {
    expect(loadExperiment('charlm-attention').config.training.lr).toBe(2 ** -10);
    expect(loadExperiment('charlm-attention-unit').config.training.lr).toBe(2 ** -6);
    expect(loadExperiment('charlm-attention-sgdm').config.training.lr).toBe(2 ** -4);
    expect(loadExperiment('charlm-rnn').config.model.depth).toBe(2);
    expect(loadExperiment('charlm-attention-fp16-ls2048').config).toMatchObject({
      precision: { mode: 'fp16' },
      training: { loss_scale: 2048 },
    });
  });

  it('charlm-quick is a small model on the sample data with limited evaluation', () => {
    const { config } = loadExperiment('charlm-quick');
    expect(config.data.dataset).toBe('sample');
    expect(config.model.hidden * config.model.depth).toBeLessThanOrEqual(256);
    expect(config.training.steps).toBeLessThanOrEqual(1000);
    expect(config.training.eval_batches).not.toBeNull();
  });
});

describe('shipped sweep files', () => {
  const sweeps = listSweeps();

  it('include the paper, reduced and quick sweeps', () => {
    expect(sweeps.map((s) => s.name)).toEqual(expect.arrayContaining(['sweep-paper', 'sweep-reduced', 'sweep-quick']));
  });

  it.each(sweeps.map((s) => [s.name]))('%s validates and plans', (name) => {
    const plan = planSweep(loadSweep(name));
    expect(plan.configurations.length).toBeGreaterThan(0);
    expect(new Set(plan.configurations.map((c) => c.id)).size).toBe(plan.configurations.length);
  });
});
