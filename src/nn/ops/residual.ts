import * as T from '../../tensor/index.ts';
import type { Scaling } from '../scaling.ts';

/** Forward weights of a residual: y = skip·x + branch·f(x). */
export interface ResidualWeights {
  readonly skip: number;
  readonly branch: number;
}

/**
 * Residual weights for τ. The 2023 rules (and the regular model) use τ as the branch's share of
 * the variance: skip √(1−τ), branch √τ (§3.4; DEMO's α). u-μP uses τ as a ratio: skip
 * 1/√(1+τ²), branch τ/√(1+τ²).
 */
export function residualWeights(tau: number, scaling: Scaling): ResidualWeights {
  if (scaling.mode === 'unit' && scaling.rules === 'umup') {
    if (tau === Number.POSITIVE_INFINITY) return { skip: 0, branch: 1 };
    const norm = Math.sqrt(1 + tau * tau);
    return { skip: 1 / norm, branch: tau / norm };
  }
  return { skip: Math.sqrt(1 - tau), branch: Math.sqrt(tau) };
}

/** The u-μP ratio τ that gives the same forward weights as a variance share α (α = 1 → ∞). */
export function ratioFromShare(alpha: number): number {
  return alpha >= 1 ? Number.POSITIVE_INFINITY : Math.sqrt(alpha / (1 - alpha));
}

/**
 * residual_split(x, τ): two views of x whose gradients are scaled by the branch and skip weights
 * (unit-scaled), so the branch sees 1/branch times its true gradient: unit gradients inside.
 * Regular: both are x.
 */
export function residualSplit(x: T.Tensor, tau: number, scaling: Scaling): { residual: T.Tensor; skip: T.Tensor } {
  if (scaling.mode === 'regular') return { residual: x, skip: x };
  const w = residualWeights(tau, scaling);
  return { residual: T.scaleBwd(x, w.branch), skip: T.scaleBwd(x, w.skip) };
}

/**
 * residual_add(r, s, τ) = branch·r + skip·s. Unit-scaled: forward-only weights (their backward
 * halves sit in residual_split), one fused add kernel. Regular: the same forward weights with
 * the true gradient.
 */
export function residualAdd(residual: T.Tensor, skip: T.Tensor, tau: number, scaling: Scaling): T.Tensor {
  return T.add(residual, skip, residualAddOptions(tau, scaling));
}

/** residualAdd's factors as T.add options (for kernels that fuse the add, e.g. nn.addLayerNorm). */
export function residualAddOptions(tau: number, scaling: Scaling): T.AddOptions {
  const w = residualWeights(tau, scaling);
  if (scaling.mode === 'regular') return { scaleA: w.branch, scaleB: w.skip };
  return { scaleA: w.branch, scaleB: w.skip, gradScaleA: 1, gradScaleB: 1 };
}

/**
 * u-μP's transformer_residual_scaling_rule(residual_mult, residual_attn_ratio) (US@main,
 * §3.4): the ratio τ of branch `index` out of `branches` (attention at even, MLP at odd indices),
 * chosen so that every branch of one kind contributes equally and the embedding keeps its share.
 */
export function transformerResidualScalingRule(residualMult = 1, residualAttnRatio = 1): (index: number, branches: number) => number {
  const alphaMlp = residualMult * Math.sqrt(2 / (1 + residualAttnRatio ** 2));
  const alphaAttn = residualAttnRatio * alphaMlp;
  return (index, branches) => {
    const attnBefore = Math.floor((index + 1) / 2);
    const mlpBefore = Math.floor(index / 2);
    const alpha = index % 2 === 0 ? alphaAttn : alphaMlp;
    return alpha / Math.sqrt(branches / 2 + attnBefore * alphaAttn ** 2 + mlpBefore * alphaMlp ** 2);
  };
}
