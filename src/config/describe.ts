import YAML from 'yaml';
import { planSweep } from '../train/sweep-plan.ts';
import { catalogueKindOf } from './catalogue.ts';
import { dumpExperiment, loadExperiment, type ExperimentFlags } from './load.ts';
import { displayPath } from './paths.ts';
import { loadSweep } from './sweep-load.ts';

function overridesComment(overrides: readonly string[], flags: Partial<ExperimentFlags>): string[] {
  const parts = [
    ...overrides.map((o) => `--set ${o}`),
    ...Object.entries(flags).map(([flag, value]) => `--${flag} ${String(value)}`),
  ];
  return parts.length ? [`# overrides: ${parts.join(' ')}`] : [];
}

function lrText(lr: number): string | number {
  const exponent = Math.log2(lr);
  return Number.isInteger(exponent) ? `2^${exponent}` : lr;
}

/**
 * What `repro show` prints, as YAML: a resolved experiment, or a sweep's resolved definition
 * followed by its planned configurations.
 */
export function describeExperimentOrSweep(
  nameOrPath: string,
  overrides: readonly string[],
  flags: Partial<ExperimentFlags>,
): string {
  if (catalogueKindOf(nameOrPath) === 'sweep') {
    const resolved = loadSweep(nameOrPath);
    const plan = planSweep(resolved, overrides, flags);
    const header = [
      `# sweep ${displayPath(resolved.file)}${resolved.chain.length > 1 ? ` (extends ${resolved.chain.slice(0, -1).map(displayPath).join(' <- ')})` : ''}`,
      ...overridesComment(overrides, flags),
    ];
    const planned = {
      plan: plan.configurations.map((c) => ({ id: c.id, lr_start: lrText(c.lrSearch.start) })),
    };
    return [
      ...header,
      YAML.stringify(resolved.sweep, { lineWidth: 0 }).trimEnd(),
      `# ${plan.configurations.length} configurations of ${displayPath(plan.baseFile)} (${plan.dropped.length} dropped by filters)`,
      YAML.stringify(planned, { lineWidth: 0 }),
    ].join('\n');
  }
  const resolved = loadExperiment(nameOrPath, overrides, flags);
  const header = [`# resolved from ${resolved.chain.slice().reverse().map(displayPath).join(' <- ')}`, ...overridesComment(overrides, flags)];
  return `${header.join('\n')}\n${dumpExperiment(resolved.config)}`;
}
