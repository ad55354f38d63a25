/**
 * The fused Recurrent Highway Network step, forward and backward, one thread per (row, unit).
 * Twins of src/backend/cpu/highway-kernels.ts: the rounding points are the unfused graph's and the
 * rounding is the quantise kernel's own quantise_nearest (the random module's source is compiled
 * in, so both share one definition). tanh and σ and their derivatives are evaluated in float64
 * with the CPU unary kernels' formulas, so results differ from the CPU only where the device's
 * float64 tanh/exp differ from V8's in the last bit and that reaches the float32 result.
 * Compiled with --fmad=false: u·d followed by state + s must round twice, as two ops do.
 */
import type { KernelModuleSource } from '../modules.ts';
import { RANDOM_MODULE } from './random.ts';

const SOURCE = String.raw`
struct HighwayRound {
  int on;
  int viaFp16;
};

/** R(v): nearest rounding to the target grid (after fp16 when viaFp16), or the identity. */
__device__ __forceinline__ float hw_round(float v, const HighwayRound &mode, const QuantGrid &target, const QuantGrid &fp16) {
  if (!mode.on) return v;
  u32 x = __float_as_uint(v);
  if (mode.viaFp16) x = quantise_nearest(x, fp16);
  return __uint_as_float(quantise_nearest(x, target));
}

/** σ as the CPU twin computes it (src/backend/cpu/math.ts), in float64. */
__device__ __forceinline__ double hw_sigmoid(double x) {
  if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}

extern "C" __global__ void highway_step(const float *projected, const float *recurrent, const float *state, float *out, float *pre,
                                        int batch, int width, int length, int step,
                                        int rounding, int viaFp16, QuantGrid target, QuantGrid fp16) {
  HighwayRound mode = {rounding, viaFp16};
  int n = batch * width;
  GRID_STRIDE(i, n) {
    int b = i / width, j = i - b * width;
    const float *x = projected + (b * length + step) * 2 * width;
    int r = 2 * width * b;
    float pc = hw_round(x[j] + recurrent[r + j], mode, target, fp16);
    float pu = hw_round(x[width + j] + recurrent[r + width + j], mode, target, fp16);
    pre[r + j] = pc;
    pre[r + width + j] = pu;
    float c = hw_round((float)tanh((double)pc), mode, target, fp16);
    float u = hw_round((float)hw_sigmoid((double)pu), mode, target, fp16);
    float st = state[i];
    float d = hw_round(c - st, mode, target, fp16);
    float s = hw_round(u * d, mode, target, fp16);
    out[i] = hw_round(st + s, mode, target, fp16);
  }
}

/**
 * The unfused chain's backward in tape order (see the CPU twin): the gradient arriving at each
 * quantise is rounded, the tanh half of the gradient at pre is 0 + g (its slice backward adds
 * into the zeros the σ half's slice backward made), gradState = gh − gd or (gradState + gh) − gd.
 * Null outputs are skipped.
 */
extern "C" __global__ void highway_step_grad(const float *pre, const float *state, const float *gradOut,
                                             float *gradProjected, int accumulateProjected, float *gradRecurrent, float *gradState, int accumulateState,
                                             int batch, int width, int length, int step,
                                             int rounding, int viaFp16, QuantGrid target, QuantGrid fp16) {
  HighwayRound mode = {rounding, viaFp16};
  int n = batch * width;
  GRID_STRIDE(i, n) {
    int b = i / width, j = i - b * width;
    int r = 2 * width * b;
    float pc = pre[r + j], pu = pre[r + width + j], st = state[i];
    double tc = tanh((double)pc);
    double su = hw_sigmoid((double)pu);
    float c = hw_round((float)tc, mode, target, fp16);
    float u = hw_round((float)su, mode, target, fp16);
    float d = hw_round(c - st, mode, target, fp16);
    float gh = hw_round(gradOut[i], mode, target, fp16);
    float gs = hw_round(gh, mode, target, fp16);
    float gu = hw_round(gs * d, mode, target, fp16);
    float gd = hw_round(gs * u, mode, target, fp16);
    if (gradState) gradState[i] = accumulateState ? (gradState[i] + gh) - gd : gh - gd;
    float gc = hw_round(gd, mode, target, fp16);
    float gpc = (float)((1.0 - tc * tc) * (double)gc);
    // 0 + g without relying on the compiler to keep an addition of zero.
    gpc = gpc == 0.0f ? 0.0f : gpc;
    gpc = hw_round(gpc, mode, target, fp16);
    float gpu = hw_round((float)(su * (1.0 - su) * (double)gu), mode, target, fp16);
    if (gradRecurrent) {
      gradRecurrent[r + j] = gpc;
      gradRecurrent[r + width + j] = gpu;
    }
    if (gradProjected) {
      float *gp = gradProjected + (b * length + step) * 2 * width;
      if (accumulateProjected) {
        gp[j] += gpc;
        gp[width + j] += gpu;
      } else {
        gp[j] = gpc;
        gp[width + j] = gpu;
      }
    }
  }
}
`;

export const HIGHWAY_MODULE: KernelModuleSource = {
  name: 'highway',
  source: [RANDOM_MODULE.source, SOURCE].join('\n'),
  options: ['--fmad=false'],
};
