import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSweep } from '../../src/config/sweep-load.ts';
import { planSweep } from '../../src/train/sweep-plan.ts';
import { reproErrorOf, writeFiles } from '../config/helpers.ts';

/** §A8: 4 (mixer, norm) pairs × 5 (precision, scaling, loss scale) variants. */
const PAIRS = [
  ['rnn', 2, 'pre'],
  ['conv', 8, 'pre'],
  ['attention', 8, 'pre'],
  ['attention', 8, 'post'],
] as const;
const VARIANTS = [
  ['fp16', 'regular', 1],
  ['fp16', 'regular', 2048],
  ['fp16', 'unit', 1],
  ['fp32', 'regular', 1],
  ['fp32', 'unit', 1],
] as const;
const EXPECTED = PAIRS.flatMap(([mixer, depth, norm]) =>
  VARIANTS.map(([precision, scaling, lossScale]) => `${mixer}/${depth}/${norm}/${precision}/${scaling}/${lossScale}`),
).sort();

describe('sweep-paper', () => {
  const plan = planSweep(loadSweep('sweep-paper'));

  it('expands to exactly the 20 configurations of §A8', () => {
    const seen = plan.configurations.map(({ config: c }) =>
      [c.model.mixer, c.model.depth, c.model.norm, c.precision.mode, c.scaling.mode, c.training.loss_scale].join('/'),
    );
    expect(seen.sort()).toEqual(EXPECTED);
    expect(plan.dropped).toHaveLength(3 * 2 * 2 * 2 * 2 - 20);
  });

  it('keeps the common settings and the paper lr search', () => {
    for (const { config, lrSearch } of plan.configurations) {
      expect(config.training).toMatchObject({ optimiser: 'adamw', lr_decay: 2 ** -16, steps: 2 ** 19 });
      expect(config.model.alpha).toBe('mean');
      expect(lrSearch).toMatchObject({ step: 2, threshold: 0.1, reps: 3, maxTrials: null });
      const start = config.scaling.mode === 'unit' ? 2 ** -8 : 2 ** -14;
      expect(lrSearch.start).toBe(start);
      expect(config.training.lr).toBe(start);
    }
  });

  it('gives stable, readable ids', () => {
    expect(plan.configurations[0]?.id).toBe('mixer=rnn,norm=pre,precision.mode=fp16,scaling.mode=regular,loss_scale=1');
    expect(planSweep(loadSweep('sweep-paper')).configurations.map((c) => c.id)).toEqual(plan.configurations.map((c) => c.id));
  });
});

describe('sweep-reduced', () => {
  it('has the same configurations at 2^14 steps, one rep, starting one step below the §A9 medians', () => {
    const paper = planSweep(loadSweep('sweep-paper'));
    const reduced = planSweep(loadSweep('sweep-reduced'));
    expect(reduced.configurations.map((c) => c.id)).toEqual(paper.configurations.map((c) => c.id));
    for (const { config, lrSearch } of reduced.configurations) {
      expect(config.training.steps).toBe(2 ** 14);
      expect(lrSearch.reps).toBe(1);
      expect(lrSearch.start).toBe(config.scaling.mode === 'unit' ? 2 ** -7 : 2 ** -11);
    }
  });
});

describe('planSweep', () => {
  function sweepFile(body: string): string {
    return join(writeFiles({ 'mine.yaml': body }), 'mine.yaml');
  }
  const LR = 'lr_search: { start: 2^-8, step: 2, threshold: 0.1, reps: 1 }\n';

  it('applies filters with lists of values, adjustments, set and steps', () => {
    const file = sweepFile(
      `base: charlm-quick\naxes:\n  model.mixer: [attention, conv, rnn]\n  model.hidden: [32, 64]\n` +
        `set: { training.eval_batches: 2 }\nsteps: 2^5\n` +
        `adjust:\n  - when: { model.mixer: [conv, rnn] }\n    set: { model.depth: 1 }\n` +
        `filters:\n  - where: { model.hidden: "2^5" }\n    drop_unless: { model.mixer: [attention, rnn] }\n` +
        LR,
    );
    const plan = planSweep(loadSweep(file));
    expect(plan.configurations.map((c) => c.id)).toEqual([
      'mixer=attention,hidden=32',
      'mixer=attention,hidden=64',
      'mixer=conv,hidden=64',
      'mixer=rnn,hidden=32',
      'mixer=rnn,hidden=64',
    ]);
    expect(plan.dropped).toEqual([{ id: 'mixer=conv,hidden=32', filter: 0 }]);
    const depth = Object.fromEntries(plan.configurations.map((c) => [c.id, c.config.model.depth]));
    expect(depth['mixer=attention,hidden=32']).toBe(2);
    expect(depth['mixer=rnn,hidden=32']).toBe(1);
    for (const { config } of plan.configurations) {
      expect(config.training.eval_batches).toBe(2);
      expect(config.training.steps).toBe(32);
    }
  });

  it('lets the user override every configuration; --lr replaces the starting lr', () => {
    const plan = planSweep(loadSweep('sweep-quick'), ['model.hidden=16'], { steps: 10, lr: '2^-3', device: 'cpu' });
    for (const c of plan.configurations) {
      expect(c.config.model.hidden).toBe(16);
      expect(c.config.training.steps).toBe(10);
      expect(c.config.device).toBe('cpu');
      expect(c.lrSearch.start).toBe(0.125);
    }
  });

  it('reports an unknown axis key with the sweep file', () => {
    const file = sweepFile(`base: charlm-quick\naxes: { model.mixr: [conv] }\n${LR}`);
    expect(reproErrorOf(() => planSweep(loadSweep(file)))).toMatch(
      new RegExp(`^${file} \\(axes: model\\.mixr=conv\\): model\\.mixr: unknown key`),
    );
  });

  it('reports a bad axis value with the sweep file and key', () => {
    const file = sweepFile(`base: charlm-quick\naxes: { model.norm: [pre, sideways] }\n${LR}`);
    expect(reproErrorOf(() => planSweep(loadSweep(file)))).toMatch(/model\.norm: expected one of pre\|post\|none, got "sideways"$/);
  });

  it('reports unknown keys in filters and missing starting lrs', () => {
    const filter = sweepFile(`base: charlm-quick\nfilters: [{ where: {}, drop_unless: { model.colour: red } }]\n${LR}`);
    expect(reproErrorOf(() => planSweep(loadSweep(filter)))).toMatch(/filters\[0\]\.drop_unless: unknown experiment key "model\.colour"/);
    const start = sweepFile(
      'base: charlm-quick\naxes: { training.optimiser: [adamw, sgdm] }\n' +
        'lr_search: { start: { regular: { adamw: 2^-8 } }, step: 2, threshold: 0.1, reps: 1 }\n',
    );
    expect(reproErrorOf(() => planSweep(loadSweep(start)))).toMatch(/lr_search\.start \(optimiser=sgdm\): no starting lr for regular sgdm/);
  });

  it('validates the sweep file itself', () => {
    const bad = sweepFile(`base: charlm-quick\naxes: { model.mixer: [] }\n${LR}`);
    expect(reproErrorOf(() => loadSweep(bad))).toMatch(/axes\.model\.mixer: expected at least 1 entry, got a list/);
    const step = sweepFile('base: charlm-quick\nlr_search: { start: 2^-8, step: 1, threshold: 0.1, reps: 1 }\n');
    expect(reproErrorOf(() => loadSweep(step))).toMatch(/mine\.yaml: lr_search\.step: expected a number > 1, got 1$/);
    const extra = sweepFile(`base: charlm-quick\ngrid: {}\n${LR}`);
    expect(reproErrorOf(() => loadSweep(extra))).toMatch(/mine\.yaml: grid: unknown key; expected one of name\|description\|base\|/);
    const twice = sweepFile(`base: charlm-quick\naxes: { model.depth: [1, 1] }\n${LR}`);
    expect(reproErrorOf(() => planSweep(loadSweep(twice)))).toMatch(/axes\.model\.depth: a value is listed twice/);
  });
});
