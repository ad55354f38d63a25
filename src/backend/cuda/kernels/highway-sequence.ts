/**
 * A whole FP32 Recurrent Highway Network recurrence in one launch each way: one block per batch
 * row, whose recurrence depends on no other row, so the block walks all L timesteps with the state
 * in shared memory and no grid-wide synchronisation. Forward: thread j computes column j of the
 * step's recurrent product (2H threads) and threads j < H the cell; backward: see its kernel. This replaces 2L GEMM and cell
 * launches per layer and direction, which leave the GPU idle between tiny kernels.
 * Twins of src/backend/cpu/highway-sequence.ts, summing in the same order; compiled with
 * --fmad=false so every product and sum rounds to float32 as the twin's Math.fround does.
 */
import type { KernelModuleSource } from '../modules.ts';

const SOURCE = String.raw`
/** σ as the CPU twin computes it (src/backend/cpu/math.ts), in float64. */
__device__ __forceinline__ double seq_sigmoid(double x) {
  if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}

/** Block b = batch row b; blockDim.x = 2·width; dynamic shared memory: 2·width floats. */
extern "C" __global__ void highway_sequence(const float *__restrict__ projected, const float *__restrict__ weight,
                                            const float *__restrict__ initial, float *states, float *previous, float *pre,
                                            int length, int width, float scale) {
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
    const float p = projected[at * twoH + j] + scale * acc;
    pre[at * twoH + j] = p;
    if (j >= H) gate[j - H] = p;
    __syncthreads();
    if (j < H) {
      const float hp = h[j];
      previous[at * H + j] = hp;
      const float c = (float)tanh((double)p);
      const float u = (float)seq_sigmoid((double)gate[j]);
      const float d = c - hp;
      const float s = u * d;
      const float next = hp + s;
      states[at * H + j] = next;
      // every thread has finished reading h for this step (the barrier above)
      h[j] = next;
    }
    __syncthreads();
  }
}

/**
 * Block b = batch row b; blockDim.x = 2·width rounded up to whole warps; dynamic shared
 * memory: 3·width floats (the step's gPre, then the state gradient through the product). Threads
 * j < H do the cell; then warp w computes outputs o = w, w + warps, … of gPre·weightᵀ, lane l
 * summing k = l, l + 32, … (coalesced reads of weight row o) and the warp adding its 32 partial
 * sums by xor shuffles with offsets 16, 8, 4, 2, 1: the CPU twin sums in exactly this order.
 */
extern "C" __global__ void highway_sequence_grad(const float *__restrict__ pre, const float *__restrict__ previous,
                                                 const float *__restrict__ weight, const float *__restrict__ gradStates,
                                                 float *gradProjected, float *gradInitial, int length, int width, float gradScale) {
  extern __shared__ float shared[];
  float *gPre = shared;
  float *viaAll = shared + 2 * width;
  const int b = blockIdx.x, j = threadIdx.x, H = width, twoH = 2 * width;
  const int lane = j & 31, warp = j >> 5, warps = (blockDim.x + 31) >> 5;
  float gh = 0.0f, gd = 0.0f;
  for (int t = length - 1; t >= 0; t--) {
    const long long at = (long long)b * length + t;
    if (j < H) {
      float g = gradStates[at * H + j];
      if (t < length - 1) g = ((g + gh) - gd) + viaAll[j];
      const double tc = tanh((double)pre[at * twoH + j]);
      const double su = seq_sigmoid((double)pre[at * twoH + H + j]);
      const float d = (float)tc - previous[at * H + j];
      const float gdj = g * (float)su;
      const float gu = g * d;
      const float gc = (float)((1.0 - tc * tc) * (double)gdj);
      const float gpu = (float)(su * (1.0 - su) * (double)gu);
      gradProjected[at * twoH + j] = gc;
      gradProjected[at * twoH + H + j] = gpu;
      gPre[j] = gc;
      gPre[H + j] = gpu;
      gh = g;
      gd = gdj;
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
  if (gradInitial && j < H) gradInitial[(long long)b * H + j] = (gh - gd) + viaAll[j];
}
`;

export const HIGHWAY_SEQUENCE_MODULE: KernelModuleSource = {
  name: 'highway-sequence',
  source: SOURCE,
  options: ['--fmad=false'],
};
