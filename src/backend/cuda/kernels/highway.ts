/**
 * The fused Recurrent Highway Network step, forward and backward, one thread per (row, unit),
 * and the whole-sequence kernels (one block per batch row for all timesteps; twins in
 * src/backend/cpu/highway-sequence.ts). The step kernels are twins of src/backend/cpu/highway-kernels.ts: the rounding points are the unfused graph's and the
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
import { SEQUENCE_BACKWARD_POINTS, SEQUENCE_FORWARD_POINTS } from '../../backend.ts';

/** Words of the SeqStreams struct: the Philox key and the first stream. */
export const SEQUENCE_STREAMS_WORDS = 3;

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

/** Philox key and first stream of a whole-sequence op (stream of point k at timestep t: first + points·t + k). */
struct SeqStreams {
  u32 k0;
  u32 k1;
  u32 first;
};

/** hw_round for a whole-sequence op's rounding point 'point' of timestep t, element 'index' of that timestep's tensor. */
__device__ __forceinline__ float seq_round(float v, const HighwayRound &mode, const QuantGrid &target, const QuantGrid &fp16,
                                           const SeqStreams &s, u32 epoch, int points, int t, int point, int index) {
  if (!mode.rounding) return v;
  u32 x = __float_as_uint(v);
  if (mode.viaFp16) x = quantise_nearest(x, fp16);
  if (mode.rounding == 2) {
    Words4 w = stream_block((long long)(index >> 2), s.first + (u32)(points * t + point), epoch, s.k0, s.k1);
    u32 word;
    switch (index & 3) {
      case 0: word = w.w[0]; break;
      case 1: word = w.w[1]; break;
      case 2: word = w.w[2]; break;
      default: word = w.w[3];
    }
    return __uint_as_float(quantise_stochastic(x, target, word));
  }
  return __uint_as_float(quantise_nearest(x, target));
}

#define SEQ_FORWARD_POINTS ${SEQUENCE_FORWARD_POINTS}
#define SEQ_BACKWARD_POINTS ${SEQUENCE_BACKWARD_POINTS}

/**
 * A whole Recurrent Highway Network recurrence in one launch: block b walks batch row b through
 * all timesteps (a row's recurrence depends on no other row) with its state in shared memory, so
 * no grid-wide synchronisation is needed. blockDim.x = 2·width: thread j computes column j of the
 * step's recurrent product, threads j < width the cell. Dynamic shared memory: 2·width floats.
 * Rounding points per timestep (HighwaySequenceParams): r, pre [B, 2H]; c, u, d, s, h [B, H].
 */
extern "C" __global__ void highway_sequence(const float *__restrict__ projected, const float *__restrict__ weight,
                                            const float *__restrict__ initial, float *states, float *previous, float *pre,
                                            int length, int width, float scale,
                                            int rounding, int viaFp16, QuantGrid target, QuantGrid fp16, SeqStreams streams, const int *epochPtr) {
  HighwayRound mode = {rounding, viaFp16};
  u32 epoch = rounding == 2 ? read_epoch(epochPtr) : 0u;
  extern __shared__ float shared[];
  float *h = shared;
  float *gate = shared + width;
  const int b = blockIdx.x, j = threadIdx.x, H = width, twoH = 2 * width;
  if (j < H) h[j] = initial[(long long)b * H + j];
  __syncthreads();
  for (int t = 0; t < length; t++) {
    const long long at = (long long)b * length + t;
    float acc = 0.0f;
#pragma unroll 8
    for (int k = 0; k < H; k++) acc = acc + h[k] * weight[k * twoH + j];
    const float r = seq_round(scale * acc, mode, target, fp16, streams, epoch, SEQ_FORWARD_POINTS, t, 0, b * twoH + j);
    const float p = seq_round(projected[at * twoH + j] + r, mode, target, fp16, streams, epoch, SEQ_FORWARD_POINTS, t, 1, b * twoH + j);
    pre[at * twoH + j] = p;
    if (j >= H) gate[j - H] = p;
    __syncthreads();
    if (j < H) {
      const int i = b * H + j;
      const float hp = h[j];
      previous[at * H + j] = hp;
      const float c = seq_round((float)tanh((double)p), mode, target, fp16, streams, epoch, SEQ_FORWARD_POINTS, t, 2, i);
      const float u = seq_round((float)hw_sigmoid((double)gate[j]), mode, target, fp16, streams, epoch, SEQ_FORWARD_POINTS, t, 3, i);
      const float d = seq_round(c - hp, mode, target, fp16, streams, epoch, SEQ_FORWARD_POINTS, t, 4, i);
      const float s = seq_round(u * d, mode, target, fp16, streams, epoch, SEQ_FORWARD_POINTS, t, 5, i);
      const float next = seq_round(hp + s, mode, target, fp16, streams, epoch, SEQ_FORWARD_POINTS, t, 6, i);
      states[at * H + j] = next;
      // every thread has finished reading h for this step (the barrier above)
      h[j] = next;
    }
    __syncthreads();
  }
}

/**
 * Its backward through time (HighwaySequenceGradParams). blockDim.x = 2·width rounded up to whole
 * warps; dynamic shared memory: 3·width floats (the step's gPre, then the state gradient through
 * the product). Threads j < width do the cell; then warp w computes outputs o = w, w + warps, …
 * of gPre·weightᵀ, lane l summing k = l, l + 32, … (coalesced reads of weight row o) and the warp
 * adding its 32 partial sums by xor shuffles with offsets 16, 8, 4, 2, 1, as the CPU twin does.
 */
extern "C" __global__ void highway_sequence_grad(const float *__restrict__ pre, const float *__restrict__ previous,
                                                 const float *__restrict__ weight, const float *__restrict__ gradStates,
                                                 float *gradProjected, float *gradInitial, int length, int width, float gradScale,
                                                 int rounding, int viaFp16, QuantGrid target, QuantGrid fp16,
                                                 SeqStreams streams, const int *epochPtr, SeqStreams gradStreams, const int *gradEpochPtr) {
  HighwayRound mode = {rounding, viaFp16};
  u32 epoch = rounding == 2 ? read_epoch(epochPtr) : 0u;
  u32 gradEpoch = rounding == 2 ? read_epoch(gradEpochPtr) : 0u;
  extern __shared__ float shared[];
  float *gPre = shared;
  float *viaAll = shared + 2 * width;
  const int b = blockIdx.x, j = threadIdx.x, H = width, twoH = 2 * width;
  const int lane = j & 31, warp = j >> 5, warps = blockDim.x >> 5;
  float ghNext = 0.0f, gdNext = 0.0f;
  for (int t = length - 1; t >= 0; t--) {
    const long long at = (long long)b * length + t;
    if (j < H) {
      const int i = b * H + j;
      float g = gradStates[at * H + j];
      if (t < length - 1) g = ((g + ghNext) - gdNext) + viaAll[j];
      const double tc = tanh((double)pre[at * twoH + j]);
      const double su = hw_sigmoid((double)pre[at * twoH + H + j]);
      const float c = seq_round((float)tc, mode, target, fp16, streams, epoch, SEQ_FORWARD_POINTS, t, 2, i);
      const float u = seq_round((float)su, mode, target, fp16, streams, epoch, SEQ_FORWARD_POINTS, t, 3, i);
      const float d = seq_round(c - previous[at * H + j], mode, target, fp16, streams, epoch, SEQ_FORWARD_POINTS, t, 4, i);
      const float gh = seq_round(g, mode, target, fp16, gradStreams, gradEpoch, SEQ_BACKWARD_POINTS, t, 0, i);
      const float gs = seq_round(gh, mode, target, fp16, gradStreams, gradEpoch, SEQ_BACKWARD_POINTS, t, 1, i);
      const float gd = seq_round(gs * u, mode, target, fp16, gradStreams, gradEpoch, SEQ_BACKWARD_POINTS, t, 2, i);
      const float gu = seq_round(gs * d, mode, target, fp16, gradStreams, gradEpoch, SEQ_BACKWARD_POINTS, t, 3, i);
      const float gc = seq_round(gd, mode, target, fp16, gradStreams, gradEpoch, SEQ_BACKWARD_POINTS, t, 4, i);
      const float gpc = seq_round((float)((1.0 - tc * tc) * (double)gc), mode, target, fp16, gradStreams, gradEpoch, SEQ_BACKWARD_POINTS, t, 5, b * twoH + j);
      const float gpu = seq_round((float)(su * (1.0 - su) * (double)gu), mode, target, fp16, gradStreams, gradEpoch, SEQ_BACKWARD_POINTS, t, 5, b * twoH + H + j);
      gradProjected[at * twoH + j] = gpc;
      gradProjected[at * twoH + H + j] = gpu;
      gPre[j] = gpc;
      gPre[H + j] = gpu;
      ghNext = gh;
      gdNext = gd;
    }
    __syncthreads();
    for (int o = warp; o < H; o += warps) {
      const float *row = weight + (long long)o * twoH;
      float part = 0.0f;
      for (int k = lane; k < twoH; k += 32) part = part + gPre[k] * row[k];
      for (int offset = 16; offset > 0; offset >>= 1) part = part + __shfl_xor_sync(0xffffffffu, part, offset);
      if (lane == 0) viaAll[o] = gradScale * part;
    }
    __syncthreads();
  }
  if (gradInitial && j < H) gradInitial[(long long)b * H + j] = (ghNext - gdNext) + viaAll[j];
}
`;

export const HIGHWAY_MODULE: KernelModuleSource = {
  name: 'highway',
  source: [RANDOM_MODULE.source, SOURCE].join('\n'),
  options: ['--fmad=false'],
};
