import type { Constraint, ScalingRules } from '../config/schema.ts';

export type { ScalingRules } from '../config/schema.ts';

/**
 * How an op scales itself. `regular`: the plain op with its true gradient. `unit`: the op's
 * unit-scaling rule from one of three rule sets (README "Rule sets"):
 * - paper-library: Graphcore's 2023 PyTorch library (unit-scaling-ops.md §3.1, US@084d291);
 * - paper-charlm:  the paper's own char-LM code (§7, DEMO@main unit_scale "0.4"): weight-folded
 *                  forward scales, 1/B parameter-gradient scales;
 * - umup:          the library's current u-μP rules (§3.5, US@main).
 * `constraint` is the scale constraint applied to ops that are not cut edges.
 */
export type Scaling = { readonly mode: 'regular' } | UnitScaling;

export interface UnitScaling {
  readonly mode: 'unit';
  readonly rules: ScalingRules;
  readonly constraint: Constraint;
}

export const REGULAR: Scaling = { mode: 'regular' };

/** The library default of each rule set: gmean for the 2023 rules, to_output_scale for u-μP. */
export function defaultConstraint(rules: ScalingRules): Constraint {
  return rules === 'umup' ? 'to_output_scale' : 'gmean';
}

export function unitScaling(rules: ScalingRules, constraint: Constraint = defaultConstraint(rules)): UnitScaling {
  return { mode: 'unit', rules, constraint };
}

/** The same scaling with another constraint (cut edges use `none`). */
export function withConstraint(scaling: Scaling, constraint: Constraint): Scaling {
  return scaling.mode === 'regular' ? scaling : { ...scaling, constraint };
}

/** The constraint an op uses: an explicit per-call one wins over the scaling's. */
export function constraintOf(scaling: UnitScaling, override?: Constraint): Constraint {
  return override ?? scaling.constraint;
}
