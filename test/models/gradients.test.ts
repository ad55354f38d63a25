import { describe, it } from 'vitest';
import type { Mixer, ScalingRules } from '../../src/config/schema.ts';
import { expectedGradientFactor } from './grad-factors.ts';
import { disposeBatch, expectGradients, finiteDifferences, parameterGradients, tinyBatch, tinyConfig, VOCAB, withModel } from './helpers.ts';

/**
 * End-to-end finite-difference gradient checks of every model variant. Regular models must give
 * the true gradient; unit-scaled ones the true gradient times the factor their rules imply for
 * each parameter (grad-factors.ts), which also proves that no gradient mixes differently scaled
 * paths (the cut-edge rule).
 */
const VARIANTS: { scaling: 'regular' | 'unit'; rules: ScalingRules; extra?: string[] }[] = [
  { scaling: 'regular', rules: 'paper-charlm' },
  { scaling: 'unit', rules: 'paper-charlm' },
  { scaling: 'unit', rules: 'paper-library' },
  { scaling: 'unit', rules: 'umup' },
];

function check(mixer: Mixer, scaling: 'regular' | 'unit', rules: ScalingRules, extra: string[] = []): void {
  const config = tinyConfig(mixer, scaling, rules, extra);
  const batch = tinyBatch(config);
  try {
    withModel(config, (model) => {
      const count = batch.mask.toFloat32Array().reduce((a, b) => a + b, 0);
      const analytic = parameterGradients(model, batch);
      const checks = finiteDifferences(model, batch, analytic);
      expectGradients(checks, (name) => expectedGradientFactor(config, name, { vocab: VOCAB, count }));
    });
  } finally {
    disposeBatch(batch);
  }
}

describe.each(['attention', 'conv', 'rnn'] as const)('%s char-LM', (mixer) => {
  it.each(VARIANTS)('$scaling $rules: gradients by finite differences', ({ scaling, rules, extra }) => check(mixer, scaling, rules, extra));
});

describe('residual variants', () => {
  it.each([
    ['regular', 'model.norm=post'],
    ['unit', 'model.norm=post'],
    ['regular', 'model.norm=none'],
  ] as const)('attention %s with %s', (scaling, set) => check('attention', scaling, 'paper-charlm', [set]));
});
