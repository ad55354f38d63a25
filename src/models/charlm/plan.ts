import type { ExperimentConfig } from '../../config/schema.ts';
import { ReproError } from '../../errors.ts';
import * as nn from '../../nn/index.ts';
import type { ModelParameter } from '../types.ts';

/**
 * What each rule set decides at the level of the char-LM (README "Rule sets"): initialisation,
 * learning-rate multipliers, residual weights and the few places where the architecture needs a
 * mapping of the library's op rules. Op-level scale factors live in src/nn.
 */
export interface CharLMPlan {
  readonly scaling: nn.Scaling;
  /** The scaling of cut edges (the readout, the positional projection of constant sinusoids). */
  readonly cutEdge: nn.Scaling;
  /** How the attention scales q·kᵀ, the softmax and attn·v. */
  readonly attention: 'plain' | 'library-ops' | 'sdpa';
  /** The FFN/conv ReLU: DEMO keeps it unscaled; the library rule sets use their unit ReLU. */
  readonly reluScaled: boolean;
  /** Multiplier of the sinusoid table (√2 gives it unit variance in the unit-scaled models). */
  readonly sinusoidScale: number;
  /** Initial values of a weight matrix/kernel with the given fans (regular: the paper's inits). */
  weightInit(kind: WeightKind, fanIn: number, fanOut: number): nn.Init;
  /** Forward weights of residual branch `index` (0-based over the whole model). */
  residual(index: number): nn.ResidualWeights;
  /** Gradient scale of a learned vector shared by `rows` rows (query bias, padding, initial state). */
  sharedVectorGradScale(rows: number): number;
  /** The trainer's per-parameter learning-rate multiplier. */
  lrScale(p: { role: ModelParameter['role']; shape: readonly number[]; fanIn: number; inTrunk: boolean }): number;
}

export type WeightKind = 'dense' | 'embedding' | 'qkv' | 'positional' | 'conv' | 'rnn';

const UNIT_UNIFORM = nn.uniformWithVariance(1);
const UNIT_NORMAL: nn.Init = { kind: 'normal', std: 1 };

/** The regular model's inits (experiments.md §A4). */
function regularInit(kind: WeightKind, fanIn: number, fanOut: number): nn.Init {
  switch (kind) {
    case 'dense':
    case 'conv':
      return nn.glorotUniform(fanIn, fanOut);
    case 'embedding':
      return UNIT_UNIFORM;
    case 'qkv':
    case 'positional':
    case 'rnn':
      return nn.uniformWithVariance(1 / fanIn);
  }
}

function alphaOf(config: ExperimentConfig, index: number): number | null {
  const { alpha } = config.model;
  if (alpha === 'none') return null;
  return alpha === 'mean' ? 1 / (1 + index) : alpha;
}

export function charLMPlan(config: ExperimentConfig): CharLMPlan {
  const depth = config.model.depth;
  const branches = 2 * depth;
  if (config.scaling.mode === 'regular') {
    return {
      scaling: nn.REGULAR,
      cutEdge: nn.REGULAR,
      attention: 'plain',
      reluScaled: false,
      sinusoidScale: 1,
      weightInit: regularInit,
      residual: (index) => {
        const alpha = alphaOf(config, index);
        return alpha === null ? { skip: 1, branch: 1 } : nn.residualWeights(alpha, nn.REGULAR);
      },
      sharedVectorGradScale: () => 1,
      lrScale: () => 1,
    };
  }
  const rules = config.scaling.rules;
  const constraint = config.scaling.constraint;
  if (constraint === 'to_left_grad_scale' || constraint === 'to_right_grad_scale') {
    throw new ReproError(
      `scaling.constraint ${constraint}: applies only to ops with two differentiable inputs (matmul); the char-LM's linear layers have one (use gmean, hmean, amean, to_output_scale, to_grad_input_scale or none)`,
    );
  }
  const scaling = nn.unitScaling(rules, constraint);
  const cutEdge = nn.withConstraint(scaling, 'none');
  const umupRule = nn.transformerResidualScalingRule();
  return {
    scaling,
    cutEdge,
    attention: rules === 'paper-charlm' ? 'plain' : rules === 'paper-library' ? 'library-ops' : 'sdpa',
    reluScaled: rules !== 'paper-charlm',
    sinusoidScale: Math.SQRT2,
    weightInit: () => (rules === 'paper-charlm' ? UNIT_UNIFORM : UNIT_NORMAL),
    residual: (index) => {
      const alpha = alphaOf(config, index);
      if (alpha === null) throw new Error('unit scaling needs a residual alpha (the config schema rejects alpha none)');
      if (rules !== 'umup') return nn.residualWeights(alpha, scaling);
      // u-μP: the running mean becomes its depth rule; a fixed α keeps its forward weights.
      const tau = config.model.alpha === 'mean' ? umupRule(index, branches) : nn.ratioFromShare(alpha);
      return nn.residualWeights(tau, scaling);
    },
    sharedVectorGradScale: (rows) => (rules === 'paper-charlm' ? 1 / rows : rows ** -0.5),
    lrScale: ({ role, shape, fanIn, inTrunk }) => {
      if (rules === 'paper-charlm') return shape.length === 1 ? 1 / Math.sqrt(shape[0]) : 1;
      if (rules === 'paper-library') return 1;
      // u-μP Adam rule (§5): weights (embedding included) fanIn^-½, others 1; trunk × depth^-½.
      const depthScale = inTrunk ? depth ** -0.5 : 1;
      return depthScale * (role === 'weight' || role === 'embedding' ? fanIn ** -0.5 : 1);
    },
  };
}
