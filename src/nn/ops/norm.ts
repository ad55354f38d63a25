import * as T from '../../tensor/index.ts';
import type { Scaling } from '../scaling.ts';

/**
 * Gradient scale of a normalisation's affine parameters, shared by `rows` rows: the library's
 * (∏shape/numel(x))^½ = rows^-½ (paper-library, umup), DEMO's 1/rows (paper-charlm). The
 * normalised output and the input gradient are already about unit and are left alone.
 */
export function normParamGradScale(scaling: Scaling, rows: number): number {
  if (scaling.mode === 'regular') return 1;
  return scaling.rules === 'paper-charlm' ? 1 / rows : rows ** -0.5;
}

/**
 * Layer norm over the last axis (FP32 statistics). Unit: output and input grad unscaled; gain/bias
 * grads rows^-½ or 1/rows (paper-charlm). `gradScaleX` multiplies the input gradient (a residual
 * branch's backward factor, applied in the norm's kernel instead of by residual_split).
 */
export interface NormOptions {
  readonly eps: number;
  readonly gradScaleX?: number;
  /** The output's gradient read rounded (T.LayerNormOptions.gradReadFormat). */
  readonly gradReadFormat?: T.Format16;
  /** The output stored in 16 bits of this format, for products of that format (T.LayerNormOptions.outputFormat). */
  readonly outputFormat?: T.Format16;
  /** Gradients in 16-bit storage where readers round them anyway (T.LayerNormOptions.gradStorage16). */
  readonly gradStorage16?: boolean;
}

export function layerNorm(x: T.Tensor, gamma: T.Tensor | null, beta: T.Tensor | null, scaling: Scaling, options: NormOptions): T.Tensor {
  const rows = x.size / x.shape[x.rank - 1];
  const g = normParamGradScale(scaling, rows);
  return T.layerNorm(x, gamma, beta, { eps: options.eps, gradScaleGamma: g, gradScaleBeta: g, gradScaleX: options.gradScaleX, gradReadFormat: options.gradReadFormat, outputFormat: options.outputFormat, gradStorage16: options.gradStorage16 });
}

/**
 * layerNorm(T.add(a, b, add)) in one forward kernel (a residual add and the layer norm that reads
 * its result); returns the sum too. `gradScaleX` multiplies the norm's input gradient (unit: the
 * backward factor of the residual branch the norm opens). Same scale rule as layerNorm.
 */
export function addLayerNorm(
  a: T.Tensor,
  b: T.Tensor,
  add: T.AddOptions,
  gamma: T.Tensor | null,
  beta: T.Tensor | null,
  scaling: Scaling,
  options: NormOptions & { readonly aReadFormat?: T.Format16 },
): { sum: T.Tensor; normed: T.Tensor } {
  const rows = a.size / a.shape[a.rank - 1];
  const g = normParamGradScale(scaling, rows);
  const { eps, gradScaleX, gradReadFormat, aReadFormat, outputFormat, gradStorage16 } = options;
  return T.addLayerNorm(a, b, add, gamma, beta, { eps, gradScaleGamma: g, gradScaleBeta: g, gradScaleX, gradReadFormat, aReadFormat, outputFormat, gradStorage16 });
}

/**
 * RMS normalisation x/√(mean(x²) + eps)·w over the last axis (u-μP's rms_norm; weight gradient
 * rows^-½). Composed from engine ops: the engine has no fused RMS-norm kernel.
 */
export function rmsNorm(x: T.Tensor, weight: T.Tensor | null, scaling: Scaling, options: { eps: number }): T.Tensor {
  const rows = x.size / x.shape[x.rank - 1];
  const meanSquare = T.mean(T.square(x), -1, true);
  const normalised = T.mul(x, T.rsqrt(T.add(meanSquare, options.eps)));
  if (!weight) return normalised;
  return T.mul(normalised, T.scaleBwd(weight, normParamGradScale(scaling, rows)));
}
