/**
 * The fused Recurrent Highway Network step, forward and backward, one thread per (row, unit).
 * Twins of src/backend/cpu/highway-kernels.ts: the rounding points are the unfused graph's and the
 * rounding is the quantise kernel's own quantise_nearest / quantise_stochastic (the random
 * module's source is compiled in, so both share one definition); a stochastic point rounds
 * element i of its tensor ([B, H], or [B, 2H] for pre) on element i of its Philox stream, the
 * word the quantise kernel would give element i of that tensor. tanh and σ and their
 * derivatives are evaluated in float64 with the CPU unary kernels' formulas, so results differ
 * from the CPU only where the device's float64 tanh/exp differ from V8's in the last bit and that
 * reaches the float32 result.
 * Compiled with --fmad=false: u·d followed by state + s must round twice, as two ops do.
 */
import type { KernelModuleSource } from '../modules.ts';
import { RANDOM_MODULE } from './random.ts';

/** Rounding points per direction (the HighwayStreams struct's stream words). */
export const HIGHWAY_POINTS = 6;
/** Words of the HighwayStreams struct: the Philox key, then one stream per rounding point. */
export const HIGHWAY_STREAMS_WORDS = 2 + HIGHWAY_POINTS;

const SOURCE = String.raw`
#define HW_POINTS ${HIGHWAY_POINTS}
/** rounding: 0 identity, 1 nearest, 2 stochastic. */
struct HighwayRound {
  int rounding;
  int viaFp16;
};

/** Philox key and the stream of each rounding point of one direction. */
struct HighwayStreams {
  u32 k0;
  u32 k1;
  u32 stream[HW_POINTS];
};

/** Word i of a stream: word i % 4 of block i / 4, as the quantise kernel draws element i. */
__device__ __forceinline__ u32 hw_word(int i, u32 stream, u32 epoch, const HighwayStreams &keys) {
  Words4 w = stream_block((long long)(i >> 2), stream, epoch, keys.k0, keys.k1);
  switch (i & 3) {
    case 0: return w.w[0];
    case 1: return w.w[1];
    case 2: return w.w[2];
    default: return w.w[3];
  }
}

/**
 * R(v) at a rounding point for element 'index' of that point's tensor: nearest or
 * stochastic rounding to the target grid (after fp16 nearest when viaFp16), or the identity.
 */
__device__ __forceinline__ float hw_round(float v, const HighwayRound &mode, const QuantGrid &target, const QuantGrid &fp16,
                                          const HighwayStreams &streams, u32 epoch, int point, int index) {
  if (!mode.rounding) return v;
  u32 x = __float_as_uint(v);
  if (mode.viaFp16) x = quantise_nearest(x, fp16);
  if (mode.rounding == 2) return __uint_as_float(quantise_stochastic(x, target, hw_word(index, streams.stream[point], epoch, streams)));
  return __uint_as_float(quantise_nearest(x, target));
}

/** σ as the CPU twin computes it (src/backend/cpu/math.ts), in float64. */
__device__ __forceinline__ double hw_sigmoid(double x) {
  if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}

/** Forward rounding points (the streams' order): pre, c, u, d, s, out. */
extern "C" __global__ void highway_step(const float *projected, const float *recurrent, const float *state, float *out, float *pre,
                                        int batch, int width, int length, int step,
                                        int rounding, int viaFp16, QuantGrid target, QuantGrid fp16,
                                        HighwayStreams streams, const int *epochPtr) {
  HighwayRound mode = {rounding, viaFp16};
  u32 epoch = rounding == 2 ? read_epoch(epochPtr) : 0u;
  int n = batch * width;
  GRID_STRIDE(i, n) {
    int b = i / width, j = i - b * width;
    const float *x = projected + (b * length + step) * 2 * width;
    int r = 2 * width * b;
    float pc = hw_round(x[j] + recurrent[r + j], mode, target, fp16, streams, epoch, 0, r + j);
    float pu = hw_round(x[width + j] + recurrent[r + width + j], mode, target, fp16, streams, epoch, 0, r + width + j);
    pre[r + j] = pc;
    pre[r + width + j] = pu;
    float c = hw_round((float)tanh((double)pc), mode, target, fp16, streams, epoch, 1, i);
    float u = hw_round((float)hw_sigmoid((double)pu), mode, target, fp16, streams, epoch, 2, i);
    float st = state[i];
    float d = hw_round(c - st, mode, target, fp16, streams, epoch, 3, i);
    float s = hw_round(u * d, mode, target, fp16, streams, epoch, 4, i);
    out[i] = hw_round(st + s, mode, target, fp16, streams, epoch, 5, i);
  }
}

/**
 * The unfused chain's backward in tape order (see the CPU twin): the gradient arriving at each
 * quantise is rounded, the tanh half of the gradient at pre is 0 + g (its slice backward adds
 * into the zeros the σ half's slice backward made), gradState = gh − gd or (gradState + gh) − gd.
 * Null outputs are skipped. c, u and d are recomputed on the forward's streams (points 1, 2, 3 of
 * streams); the gradient points, in gradStreams' order, are gh, gs, gd, gu, gc, gPre.
 */
extern "C" __global__ void highway_step_grad(const float *pre, const float *state, const float *gradOut,
                                             float *gradProjected, int accumulateProjected, float *gradRecurrent, float *gradState, int accumulateState,
                                             int batch, int width, int length, int step,
                                             int rounding, int viaFp16, QuantGrid target, QuantGrid fp16,
                                             HighwayStreams streams, const int *epochPtr, HighwayStreams gradStreams, const int *gradEpochPtr) {
  HighwayRound mode = {rounding, viaFp16};
  u32 epoch = rounding == 2 ? read_epoch(epochPtr) : 0u;
  u32 gradEpoch = rounding == 2 ? read_epoch(gradEpochPtr) : 0u;
  int n = batch * width;
  GRID_STRIDE(i, n) {
    int b = i / width, j = i - b * width;
    int r = 2 * width * b;
    float pc = pre[r + j], pu = pre[r + width + j], st = state[i];
    double tc = tanh((double)pc);
    double su = hw_sigmoid((double)pu);
    float c = hw_round((float)tc, mode, target, fp16, streams, epoch, 1, i);
    float u = hw_round((float)su, mode, target, fp16, streams, epoch, 2, i);
    float d = hw_round(c - st, mode, target, fp16, streams, epoch, 3, i);
    float gh = hw_round(gradOut[i], mode, target, fp16, gradStreams, gradEpoch, 0, i);
    float gs = hw_round(gh, mode, target, fp16, gradStreams, gradEpoch, 1, i);
    float gd = hw_round(gs * u, mode, target, fp16, gradStreams, gradEpoch, 2, i);
    if (gradState) gradState[i] = accumulateState ? (gradState[i] + gh) - gd : gh - gd;
    if (!gradRecurrent && !gradProjected) continue;
    float gu = hw_round(gs * d, mode, target, fp16, gradStreams, gradEpoch, 3, i);
    float gc = hw_round(gd, mode, target, fp16, gradStreams, gradEpoch, 4, i);
    float gpc = (float)((1.0 - tc * tc) * (double)gc);
    // 0 + g without relying on the compiler to keep an addition of zero.
    gpc = gpc == 0.0f ? 0.0f : gpc;
    gpc = hw_round(gpc, mode, target, fp16, gradStreams, gradEpoch, 5, r + j);
    float gpu = hw_round((float)(su * (1.0 - su) * (double)gu), mode, target, fp16, gradStreams, gradEpoch, 5, r + width + j);
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
