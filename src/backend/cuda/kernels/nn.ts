/**
 * Row-wise kernels (softmax, layer norm, cross-entropy; one block or one warp per row) and
 * embedding gather/scatter. Row statistics accumulate in float64 like the CPU twin, except in
 * layer_norm_grad_fused, which is bandwidth-bound and keeps to float32 inside a row (see there).
 */
import type { KernelModuleSource } from '../modules.ts';
import { PRELUDE } from './prelude.ts';

export const WARP_ROW_WIDTHS = [1, 2, 4, 8, 16, 32] as const;

const SOURCE = String.raw`
/**
 * Columns of row r that a causal mask leaves (all of them when causalRows is 0). The rest read as
 * -inf without a load, the value a -inf mask added to x would give, so the arithmetic after the
 * load is that of the mask-add form.
 */
__device__ __forceinline__ int causal_visible(int r, int cols, int causalRows) {
  return causalRows > 0 ? min(cols, r % causalRows + 1) : cols;
}

__device__ __forceinline__ float masked_load(const float *row, int c, int visible) {
  return c < visible ? row[c] : -f32_inf();
}

extern "C" __global__ void softmax_rows(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode, int causalRows) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + (long long)r * cols;
    float *outr = out + (long long)r * cols;
    int visible = causal_visible(r, cols, causalRows);
    float m = -f32_inf();
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = nan_max(m, inScale * masked_load(xr, c, visible));
    m = block_max(m);
    double sum = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += (double)expf(inScale * masked_load(xr, c, visible) - m);
    sum = block_sum(sum);
    if (logMode) {
      double lse = (double)m + log(sum);
      for (int c = threadIdx.x; c < cols; c += blockDim.x) outr[c] = (float)((double)outScale * ((double)inScale * (double)masked_load(xr, c, visible) - lse));
    } else {
      double k = (double)outScale / sum;
      for (int c = threadIdx.x; c < cols; c += blockDim.x) outr[c] = (float)(k * (double)expf(inScale * masked_load(xr, c, visible) - m));
    }
    __syncthreads();
  }
}

extern "C" __global__ void softmax_grad_rows(const float *y, const float *gy, float *gx, int rows, int cols, float gradScale, int logMode) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *yr = y + (long long)r * cols;
    const float *gyr = gy + (long long)r * cols;
    float *gxr = gx + (long long)r * cols;
    double dot = 0.0;
    if (logMode) {
      for (int c = threadIdx.x; c < cols; c += blockDim.x) dot += (double)gyr[c];
    } else {
      for (int c = threadIdx.x; c < cols; c += blockDim.x) dot += (double)gyr[c] * (double)yr[c];
    }
    dot = block_sum(dot);
    if (logMode) {
      for (int c = threadIdx.x; c < cols; c += blockDim.x) gxr[c] = (float)((double)gradScale * ((double)gyr[c] - (double)expf(yr[c]) * dot));
    } else {
      for (int c = threadIdx.x; c < cols; c += blockDim.x) gxr[c] = (float)((double)gradScale * (double)yr[c] * ((double)gyr[c] - dot));
    }
    __syncthreads();
  }
}

/** binary_add's arithmetic, rounded the same way (one fused multiply-add). */
__device__ __forceinline__ float residual_sum(float sa, float a, float sb, float b) { return __fmaf_rn(sa, a, __fmul_rn(sb, b)); }

/**
 * With addA non-null, x is first written as sa·addA + sb·addB (the expression of binary_add): a
 * residual add fused into the layer norm that reads its result. Each thread reads back only the
 * columns it wrote.
 */
extern "C" __global__ void layer_norm_rows(float *x, const float *gamma, const float *beta, void *out, float *mean, float *rstd,
                                           int rows, int cols, double eps, const void *addA, const float *addB, float sa, float sb, int fmtA, int outFmt, int aIn) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    float *xr = x + (long long)r * cols;
    if (addA) {
      const float *br = addB + (long long)r * cols;
      for (int c = threadIdx.x; c < cols; c += blockDim.x) xr[c] = residual_sum(sa, read_rounded(load_in(addA, (long long)r * cols + c, aIn), fmtA), sb, br[c]);
    }
    double sum = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += (double)xr[c];
    double mu = block_sum(sum) / cols;
    double sq = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      double d = (double)xr[c] - mu;
      sq += d * d;
    }
    double rs = 1.0 / sqrt(block_sum(sq) / cols + eps);
    if (threadIdx.x == 0) {
      mean[r] = (float)mu;
      rstd[r] = (float)rs;
    }
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      double v = ((double)xr[c] - mu) * rs;
      if (gamma) v *= (double)gamma[c];
      if (beta) v += (double)beta[c];
      store_in(out, (long long)r * cols + c, (float)v, outFmt);
    }
    __syncthreads();
  }
}

/**
 * gradX of layer norm for rows too long for layer_norm_grad_fused, one block per row; the gamma and
 * beta gradients come from layer_norm_param_partials.
 */
extern "C" __global__ void layer_norm_grad_rows(const float *x, const float *gamma, const float *mean, const float *rstd, const void *gy,
                                                float *gx, const float *addend, int rows, int cols, double gradXScale, int accumulate,
                                                float *gxCopy, float copyScale, int fmtG, int gyIn, void *gxCopy16, float copy16Scale, int copy16Fmt) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + (long long)r * cols;
    const long long gyr = (long long)r * cols;
    float *gxr = gx + (long long)r * cols;
    const float *addr = addend + (long long)r * cols;
    double mu = (double)mean[r], rs = (double)rstd[r];
    double sumD = 0.0, sumDX = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      double xhat = ((double)xr[c] - mu) * rs;
      double d = (double)read_rounded(load_in(gy, gyr + c, gyIn), fmtG) * (gamma ? (double)gamma[c] : 1.0);
      sumD += d;
      sumDX += d * xhat;
    }
    double meanD = block_sum(sumD) / cols;
    double meanDX = block_sum(sumDX) / cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      double xhat = ((double)xr[c] - mu) * rs;
      double d = (double)read_rounded(load_in(gy, gyr + c, gyIn), fmtG) * (gamma ? (double)gamma[c] : 1.0);
      float v = (float)(gradXScale * rs * (d - meanD - xhat * meanDX));
      float o = accumulate ? addr[c] + v : v;
      gxr[c] = o;
      if (gxCopy) gxCopy[(long long)r * cols + c] = copyScale * o;
      if (gxCopy16) store_in(gxCopy16, (long long)r * cols + c, copy16Scale * o, copy16Fmt);
    }
    __syncthreads();
  }
}

/**
 * Warp-per-row variants for rows of at most 32·K columns: the row stays in registers (lane l holds
 * columns l, l+32, …), so each element is read once and the reductions are shuffles. The
 * arithmetic is that of the block kernels above, only the summation order differs.
 */
#define WARP_ROWS_LOOP(r) \
  for (int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < rows; r += gridDim.x * (blockDim.x >> 5))

template <int K>
__device__ __forceinline__ void softmax_warp(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode, int causalRows) {
  int lane = threadIdx.x & 31;
  WARP_ROWS_LOOP(r) {
    const float *xr = x + (long long)r * cols;
    float *outr = out + (long long)r * cols;
    int visible = causal_visible(r, cols, causalRows);
    float v[K];
    float m = -f32_inf();
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      int c = lane + 32 * k;
      v[k] = c < cols ? masked_load(xr, c, visible) : 0.0f;
      if (c < cols) m = nan_max(m, inScale * v[k]);
    }
    m = warp_max(m);
    double sum = 0.0;
    float e[K];
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      e[k] = expf(inScale * v[k] - m);
      if (lane + 32 * k < cols) sum += (double)e[k];
    }
    sum = warp_sum(sum);
    if (logMode) {
      double lse = (double)m + log(sum);
      #pragma unroll
      for (int k = 0; k < K; ++k) {
        int c = lane + 32 * k;
        if (c < cols) outr[c] = (float)((double)outScale * ((double)inScale * (double)v[k] - lse));
      }
    } else {
      double scale = (double)outScale / sum;
      #pragma unroll
      for (int k = 0; k < K; ++k) {
        int c = lane + 32 * k;
        if (c < cols) outr[c] = (float)(scale * (double)e[k]);
      }
    }
  }
}

template <int K>
__device__ __forceinline__ void softmax_grad_warp(const float *y, const float *gy, float *gx, int rows, int cols, float gradScale, int logMode) {
  int lane = threadIdx.x & 31;
  WARP_ROWS_LOOP(r) {
    const float *yr = y + (long long)r * cols;
    const float *gyr = gy + (long long)r * cols;
    float *gxr = gx + (long long)r * cols;
    float yv[K], gv[K];
    double dot = 0.0;
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      int c = lane + 32 * k;
      yv[k] = c < cols ? yr[c] : 0.0f;
      gv[k] = c < cols ? gyr[c] : 0.0f;
      dot += logMode ? (double)gv[k] : (double)gv[k] * (double)yv[k];
    }
    dot = warp_sum(dot);
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      int c = lane + 32 * k;
      if (c >= cols) continue;
      if (logMode) gxr[c] = (float)((double)gradScale * ((double)gv[k] - (double)expf(yv[k]) * dot));
      else gxr[c] = (float)((double)gradScale * (double)yv[k] * ((double)gv[k] - dot));
    }
  }
}

/**
 * layerNormGrad for rows of at most 32·K columns in one pass over x and gy: a warp per row,
 * LN_WARPS warps a block over a tile of tileRows consecutive rows. VEC (cols % 4 == 0, 16-byte
 * aligned rows and gamma): lane l holds columns 128j + 4l .. 128j + 4l + 3, read and written as
 * float4; otherwise columns l + 32k. Mean and rstd are the forward's. The arithmetic is float32 (row sums too: at most
 * 1024 terms). With partialGamma non-null each warp also sums gy·x̂ and gy per column over its
 * rows of the tile (float32, at most 32 rows: the host bounds tileRows), and ln_block_partial adds
 * the block's warps into partial[blockIdx.x][column]; layer_norm_param_finish adds the blocks.
 */
#define LN_WARPS 8

template <bool VEC>
__device__ __forceinline__ int ln_column(int lane, int k) {
  return VEC ? (k >> 2) * 128 + lane * 4 + (k & 3) : lane + 32 * k;
}

/** This lane's K values of a row; 0 past the row's end. */
template <int K, bool VEC>
__device__ __forceinline__ void ln_load(const float *row, int lane, int cols, float *v) {
  if (VEC) {
    #pragma unroll
    for (int j = 0; j < K / 4; ++j) {
      int c = ln_column<VEC>(lane, 4 * j);
      float4 a = c < cols ? *reinterpret_cast<const float4 *>(row + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      v[4 * j] = a.x; v[4 * j + 1] = a.y; v[4 * j + 2] = a.z; v[4 * j + 3] = a.w;
    }
  } else {
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      int c = ln_column<VEC>(lane, k);
      v[k] = c < cols ? row[c] : 0.0f;
    }
  }
}

/** ln_load from float32 or 16-bit storage (in: its code), row starting at element offset. */
template <int K, bool VEC>
__device__ __forceinline__ void ln_load_in(const void *base, long long offset, int lane, int cols, float *v, int in) {
  if (VEC) {
    #pragma unroll
    for (int j = 0; j < K / 4; ++j) {
      int c = ln_column<VEC>(lane, 4 * j);
      float4 a = c < cols ? load4_in(base, (offset + c) >> 2, in) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      v[4 * j] = a.x; v[4 * j + 1] = a.y; v[4 * j + 2] = a.z; v[4 * j + 3] = a.w;
    }
  } else {
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      int c = ln_column<VEC>(lane, k);
      v[k] = c < cols ? load_in(base, offset + c, in) : 0.0f;
    }
  }
}

/**
 * Stores this lane's values (plus the addend's with accumulate), copyScale times them to copyRow
 * if non-null, and copy16Scale times them rounded to 16-bit storage at copy16 + offset if non-null.
 */
template <int K, bool VEC>
__device__ __forceinline__ void ln_store(float *row, const float *addend, int lane, int cols, const float *v, int accumulate, float *copyRow, float copyScale,
                                         void *copy16, long long offset, float copy16Scale, int copy16Fmt) {
  if (VEC) {
    #pragma unroll
    for (int j = 0; j < K / 4; ++j) {
      int c = ln_column<VEC>(lane, 4 * j);
      if (c >= cols) continue;
      float4 o = make_float4(v[4 * j], v[4 * j + 1], v[4 * j + 2], v[4 * j + 3]);
      float4 *dst = reinterpret_cast<float4 *>(row + c);
      if (accumulate) {
        float4 prior = *reinterpret_cast<const float4 *>(addend + c);
        o.x += prior.x; o.y += prior.y; o.z += prior.z; o.w += prior.w;
      }
      *dst = o;
      if (copyRow) *reinterpret_cast<float4 *>(copyRow + c) = make_float4(copyScale * o.x, copyScale * o.y, copyScale * o.z, copyScale * o.w);
      if (copy16) store4_in(copy16, (offset + c) >> 2, make_float4(copy16Scale * o.x, copy16Scale * o.y, copy16Scale * o.z, copy16Scale * o.w), copy16Fmt);
    }
  } else {
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      int c = ln_column<VEC>(lane, k);
      if (c >= cols) continue;
      float o = accumulate ? addend[c] + v[k] : v[k];
      row[c] = o;
      if (copyRow) copyRow[c] = copyScale * o;
      if (copy16) store_in(copy16, offset + c, copy16Scale * o, copy16Fmt);
    }
  }
}

/**
 * layerNorm for rows of at most 32·K columns, a warp per row, the row in registers. With addA
 * non-null, x is first written as sa·addA + sb·addB (see layer_norm_rows). VEC (cols % 4 == 0,
 * 16-byte aligned rows, gamma and beta): lane l holds columns 128j + 4l .. 128j + 4l + 3 and
 * moves them as float4 (a 16-bit addA as four codes); otherwise columns l + 32k. The arithmetic
 * is that of the block kernel; only the order of the row sums differs.
 */
template <int K, bool VEC>
__device__ __forceinline__ void layer_norm_warp(float *x, const float *gamma, const float *beta, void *out, float *mean, float *rstd,
                                                int rows, int cols, double eps, const void *addA, const float *addB, float sa, float sb, int fmtA, int outFmt, int aIn) {
  int lane = threadIdx.x & 31;
  WARP_ROWS_LOOP(r) {
    const long long base = (long long)r * cols;
    float v[K];
    if (addA) {
      // Every load before the first store: the compiler cannot know that x aliases neither input,
      // and stores between the loads would serialise them (large reference BF16 step: 13.46 ms, not 13.18).
      // The loads are issued before the rounding's arithmetic too (mixing them in, the large BF16
      // step's layer norms took twice as long).
      float av[K];
      ln_load_in<K, VEC>(addA, base, lane, cols, av, aIn);
      ln_load<K, VEC>(addB + base, lane, cols, v);
      #pragma unroll
      for (int k = 0; k < K; ++k) v[k] = residual_sum(sa, read_rounded(av[k], fmtA), sb, v[k]);
      ln_store<K, VEC>(x + base, nullptr, lane, cols, v, 0, nullptr, 1.0f, nullptr, 0, 1.0f, 0);
    } else {
      ln_load<K, VEC>(x + base, lane, cols, v);
    }
    double sum = 0.0;
    #pragma unroll
    for (int k = 0; k < K; ++k) sum += (double)v[k];
    double mu = warp_sum(sum) / cols;
    double sq = 0.0;
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      double d = (double)v[k] - mu;
      if (ln_column<VEC>(lane, k) < cols) sq += d * d;
    }
    double rs = 1.0 / sqrt(warp_sum(sq) / cols + eps);
    if (lane == 0) {
      mean[r] = (float)mu;
      rstd[r] = (float)rs;
    }
    if (VEC) {
      #pragma unroll
      for (int j = 0; j < K / 4; ++j) {
        int c = ln_column<VEC>(lane, 4 * j);
        if (c >= cols) continue;
        const float4 g4 = gamma ? *reinterpret_cast<const float4 *>(gamma + c) : make_float4(1.0f, 1.0f, 1.0f, 1.0f);
        const float4 b4 = beta ? *reinterpret_cast<const float4 *>(beta + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        const float gs[4] = {g4.x, g4.y, g4.z, g4.w}, bs[4] = {b4.x, b4.y, b4.z, b4.w};
        float o[4];
        #pragma unroll
        for (int i = 0; i < 4; ++i) {
          double y = ((double)v[4 * j + i] - mu) * rs;
          if (gamma) y *= (double)gs[i];
          if (beta) y += (double)bs[i];
          o[i] = (float)y;
        }
        store4_in(out, (base + c) >> 2, make_float4(o[0], o[1], o[2], o[3]), outFmt);
      }
    } else {
      #pragma unroll
      for (int k = 0; k < K; ++k) {
        int c = ln_column<VEC>(lane, k);
        if (c >= cols) continue;
        double y = ((double)v[k] - mu) * rs;
        if (gamma) y *= (double)gamma[c];
        if (beta) y += (double)beta[c];
        store_in(out, base + c, (float)y, outFmt);
      }
    }
  }
}

#define LN_WARP_VEC(K) \
  extern "C" __global__ void layer_norm_warp_v##K(float *x, const float *gamma, const float *beta, void *out, float *mean, float *rstd, int rows, int cols, \
                                                   double eps, const void *addA, const float *addB, float sa, float sb, int fmtA, int outFmt, int aIn) { \
    layer_norm_warp<K, true>(x, gamma, beta, out, mean, rstd, rows, cols, eps, addA, addB, sa, sb, fmtA, outFmt, aIn); \
  }
LN_WARP_VEC(4)
LN_WARP_VEC(8)
LN_WARP_VEC(16)
LN_WARP_VEC(32)

/**
 * partial[blockIdx.x][c] = Σ over the block's warps, in warp order and in float64, of each warp's
 * column sums acc. Every thread of the block must call it.
 */
template <int K, bool VEC>
__device__ __forceinline__ void ln_block_partial(const float (&acc)[K], float (*shared)[32 * K], double *partial, int cols, int lane, int warp) {
  if (VEC) {
    #pragma unroll
    for (int j = 0; j < K / 4; ++j) {
      int c = ln_column<VEC>(lane, 4 * j);
      if (c < cols) *reinterpret_cast<float4 *>(&shared[warp][c]) = make_float4(acc[4 * j], acc[4 * j + 1], acc[4 * j + 2], acc[4 * j + 3]);
    }
  } else {
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      int c = ln_column<VEC>(lane, k);
      if (c < cols) shared[warp][c] = acc[k];
    }
  }
  __syncthreads();
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    double sum = 0.0;
    #pragma unroll
    for (int w = 0; w < LN_WARPS; ++w) sum += (double)shared[w][c];
    partial[(long long)blockIdx.x * cols + c] = sum;
  }
  __syncthreads();
}

template <int K, bool VEC>
__device__ __forceinline__ void layer_norm_grad_fused(const float *x, const float *gamma, const float *mean, const float *rstd, const void *gy,
                                                      float *gx, const float *addend, double *partialGamma, double *partialBeta, int rows, int cols,
                                                      int tileRows, double gradXScale, int accumulate, float *gxCopy, float copyScale, int fmtG, int gyIn,
                                                      void *gxCopy16, float copy16Scale, int copy16Fmt) {
  __shared__ __align__(16) float sharedSums[LN_WARPS][32 * K];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int first = blockIdx.x * tileRows;
  int last = min(rows, first + tileRows);
  bool params = partialGamma != nullptr;
  float invCols = 1.0f / (float)cols;
  float gm[K], accGamma[K], accBeta[K];
  if (gamma) {
    ln_load<K, VEC>(gamma, lane, cols, gm);
  } else {
    #pragma unroll
    for (int k = 0; k < K; ++k) gm[k] = 1.0f;
  }
  #pragma unroll
  for (int k = 0; k < K; ++k) accGamma[k] = accBeta[k] = 0.0f;
  for (int r = first + warp; r < last; r += LN_WARPS) {
    float xv[K], gv[K];
    ln_load<K, VEC>(x + (long long)r * cols, lane, cols, xv);
    ln_load_in<K, VEC>(gy, (long long)r * cols, lane, cols, gv, gyIn);
    #pragma unroll
    for (int k = 0; k < K; ++k) gv[k] = read_rounded(gv[k], fmtG);
    float mu = mean[r], rs = rstd[r];
    // Lanes past the row's end hold gy = 0 and add nothing.
    float sumD = 0.0f, sumDX = 0.0f;
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      float xhat = (xv[k] - mu) * rs;
      float d = gv[k] * gm[k];
      sumD += d;
      sumDX = fmaf(d, xhat, sumDX);
      if (params) {
        accGamma[k] = fmaf(gv[k], xhat, accGamma[k]);
        accBeta[k] += gv[k];
      }
      xv[k] = xhat;
      gv[k] = d;
    }
    #pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      sumD += __shfl_xor_sync(0xffffffffu, sumD, offset);
      sumDX += __shfl_xor_sync(0xffffffffu, sumDX, offset);
    }
    float meanD = sumD * invCols, meanDX = sumDX * invCols;
    float scale = (float)(gradXScale * (double)rs);
    #pragma unroll
    for (int k = 0; k < K; ++k) xv[k] = scale * fmaf(-xv[k], meanDX, gv[k] - meanD);
    ln_store<K, VEC>(gx + (long long)r * cols, addend + (long long)r * cols, lane, cols, xv, accumulate, gxCopy ? gxCopy + (long long)r * cols : nullptr, copyScale,
                     gxCopy16, (long long)r * cols, copy16Scale, copy16Fmt);
  }
  if (!params) return;
  ln_block_partial<K, VEC>(accGamma, sharedSums, partialGamma, cols, lane, warp);
  ln_block_partial<K, VEC>(accBeta, sharedSums, partialBeta, cols, lane, warp);
}

#define LN_GRAD_FUSED(K, VEC, MIN_BLOCKS, SUFFIX) \
  extern "C" __global__ void __launch_bounds__(32 * LN_WARPS, MIN_BLOCKS) layer_norm_grad_fused_##SUFFIX( \
      const float *x, const float *gamma, const float *mean, const float *rstd, const void *gy, float *gx, const float *addend, \
      double *partialGamma, double *partialBeta, int rows, int cols, int tileRows, double gradXScale, int accumulate, float *gxCopy, float copyScale, int fmtG, \
      int gyIn, void *gxCopy16, float copy16Scale, int copy16Fmt) { \
    layer_norm_grad_fused<K, VEC>(x, gamma, mean, rstd, gy, gx, addend, partialGamma, partialBeta, rows, cols, tileRows, gradXScale, accumulate, gxCopy, copyScale, fmtG, \
                                  gyIn, gxCopy16, copy16Scale, copy16Fmt); \
  }
LN_GRAD_FUSED(4, true, 2, v4)
LN_GRAD_FUSED(8, true, 2, v8)
LN_GRAD_FUSED(16, true, 2, v16)
LN_GRAD_FUSED(32, true, 1, v32)
LN_GRAD_FUSED(1, false, 2, s1)
LN_GRAD_FUSED(2, false, 2, s2)
LN_GRAD_FUSED(4, false, 2, s4)
LN_GRAD_FUSED(8, false, 2, s8)
LN_GRAD_FUSED(16, false, 2, s16)
LN_GRAD_FUSED(32, false, 1, s32)

/**
 * Gamma/beta partial sums for rows too long for layer_norm_grad_fused: block (bx, by) sums Σ gy·x̂
 * and Σ gy over rows [by·chunkRows, (by+1)·chunkRows) of 32 columns into partial[by][column]
 * (fixed order, no atomics). 1024 threads = 32 columns × 32 row lanes.
 */
extern "C" __global__ void layer_norm_param_partials(const float *x, const float *mean, const float *rstd, const void *gy, double *partialGamma,
                                                     double *partialBeta, int rows, int cols, int chunkRows, int fmtG, int gyIn) {
  __shared__ double sharedGamma[32][33];
  __shared__ double sharedBeta[32][33];
  int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  int c = blockIdx.x * 32 + tx;
  int first = blockIdx.y * chunkRows;
  int last = min(rows, first + chunkRows);
  double accGamma = 0.0, accBeta = 0.0;
  if (c < cols) {
    for (int r = first + ty; r < last; r += 32) {
      double g = (double)read_rounded(load_in(gy, (long long)r * cols + c, gyIn), fmtG);
      double xhat = ((double)x[(long long)r * cols + c] - (double)mean[r]) * (double)rstd[r];
      accGamma += g * xhat;
      accBeta += g;
    }
  }
  sharedGamma[ty][tx] = accGamma;
  sharedBeta[ty][tx] = accBeta;
  __syncthreads();
  if (ty == 0 && c < cols) {
    double sg = 0.0, sb = 0.0;
    for (int k = 0; k < 32; ++k) {
      sg += sharedGamma[k][tx];
      sb += sharedBeta[k][tx];
    }
    partialGamma[(long long)blockIdx.y * cols + c] = sg;
    partialBeta[(long long)blockIdx.y * cols + c] = sb;
  }
}

/**
 * Adds the partial rows in a fixed order (deterministic) and writes, or with accumulate adds to,
 * the scaled gradients. 1024 threads = 8 columns × 128 lanes over the partial rows, then a fixed
 * tree over the lanes: the partials stream in parallel rather than one row after another.
 */
extern "C" __global__ void layer_norm_param_finish(const double *partialGamma, const double *partialBeta, float *gGamma, float *gBeta, int parts,
                                                   int cols, double gammaScale, double betaScale, int accumulate) {
  __shared__ double sharedGamma[128][8];
  __shared__ double sharedBeta[128][8];
  int tx = threadIdx.x & 7, ty = threadIdx.x >> 3;
  int c = blockIdx.x * 8 + tx;
  double sg = 0.0, sb = 0.0;
  if (c < cols) {
    for (int k = ty; k < parts; k += 128) {
      sg += partialGamma[(long long)k * cols + c];
      sb += partialBeta[(long long)k * cols + c];
    }
  }
  sharedGamma[ty][tx] = sg;
  sharedBeta[ty][tx] = sb;
  __syncthreads();
  for (int half = 64; half > 0; half >>= 1) {
    if (ty < half) {
      sharedGamma[ty][tx] += sharedGamma[ty + half][tx];
      sharedBeta[ty][tx] += sharedBeta[ty + half][tx];
    }
    __syncthreads();
  }
  if (ty == 0 && c < cols) {
    sg = sharedGamma[0][tx];
    sb = sharedBeta[0][tx];
    if (gGamma) gGamma[c] = (float)(accumulate ? (double)gGamma[c] + gammaScale * sg : gammaScale * sg);
    if (gBeta) gBeta[c] = (float)(accumulate ? (double)gBeta[c] + betaScale * sb : betaScale * sb);
  }
}

extern "C" __global__ void softmax_warp_1(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode, int causalRows) {
  softmax_warp<1>(x, out, rows, cols, inScale, outScale, logMode, causalRows);
}
extern "C" __global__ void softmax_grad_warp_1(const float *y, const float *gy, float *gx, int rows, int cols, float gradScale, int logMode) {
  softmax_grad_warp<1>(y, gy, gx, rows, cols, gradScale, logMode);
}
extern "C" __global__ void layer_norm_warp_1(float *x, const float *gamma, const float *beta, void *out, float *mean, float *rstd, int rows, int cols, double eps,
                                                const void *addA, const float *addB, float sa, float sb, int fmtA, int outFmt, int aIn) {
  layer_norm_warp<1, false>(x, gamma, beta, out, mean, rstd, rows, cols, eps, addA, addB, sa, sb, fmtA, outFmt, aIn);
}
extern "C" __global__ void softmax_warp_2(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode, int causalRows) {
  softmax_warp<2>(x, out, rows, cols, inScale, outScale, logMode, causalRows);
}
extern "C" __global__ void softmax_grad_warp_2(const float *y, const float *gy, float *gx, int rows, int cols, float gradScale, int logMode) {
  softmax_grad_warp<2>(y, gy, gx, rows, cols, gradScale, logMode);
}
extern "C" __global__ void layer_norm_warp_2(float *x, const float *gamma, const float *beta, void *out, float *mean, float *rstd, int rows, int cols, double eps,
                                                const void *addA, const float *addB, float sa, float sb, int fmtA, int outFmt, int aIn) {
  layer_norm_warp<2, false>(x, gamma, beta, out, mean, rstd, rows, cols, eps, addA, addB, sa, sb, fmtA, outFmt, aIn);
}
extern "C" __global__ void softmax_warp_4(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode, int causalRows) {
  softmax_warp<4>(x, out, rows, cols, inScale, outScale, logMode, causalRows);
}
extern "C" __global__ void softmax_grad_warp_4(const float *y, const float *gy, float *gx, int rows, int cols, float gradScale, int logMode) {
  softmax_grad_warp<4>(y, gy, gx, rows, cols, gradScale, logMode);
}
extern "C" __global__ void layer_norm_warp_4(float *x, const float *gamma, const float *beta, void *out, float *mean, float *rstd, int rows, int cols, double eps,
                                                const void *addA, const float *addB, float sa, float sb, int fmtA, int outFmt, int aIn) {
  layer_norm_warp<4, false>(x, gamma, beta, out, mean, rstd, rows, cols, eps, addA, addB, sa, sb, fmtA, outFmt, aIn);
}
extern "C" __global__ void softmax_warp_8(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode, int causalRows) {
  softmax_warp<8>(x, out, rows, cols, inScale, outScale, logMode, causalRows);
}
extern "C" __global__ void softmax_grad_warp_8(const float *y, const float *gy, float *gx, int rows, int cols, float gradScale, int logMode) {
  softmax_grad_warp<8>(y, gy, gx, rows, cols, gradScale, logMode);
}
extern "C" __global__ void layer_norm_warp_8(float *x, const float *gamma, const float *beta, void *out, float *mean, float *rstd, int rows, int cols, double eps,
                                                const void *addA, const float *addB, float sa, float sb, int fmtA, int outFmt, int aIn) {
  layer_norm_warp<8, false>(x, gamma, beta, out, mean, rstd, rows, cols, eps, addA, addB, sa, sb, fmtA, outFmt, aIn);
}
extern "C" __global__ void softmax_warp_16(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode, int causalRows) {
  softmax_warp<16>(x, out, rows, cols, inScale, outScale, logMode, causalRows);
}
extern "C" __global__ void softmax_grad_warp_16(const float *y, const float *gy, float *gx, int rows, int cols, float gradScale, int logMode) {
  softmax_grad_warp<16>(y, gy, gx, rows, cols, gradScale, logMode);
}
extern "C" __global__ void layer_norm_warp_16(float *x, const float *gamma, const float *beta, void *out, float *mean, float *rstd, int rows, int cols, double eps,
                                                const void *addA, const float *addB, float sa, float sb, int fmtA, int outFmt, int aIn) {
  layer_norm_warp<16, false>(x, gamma, beta, out, mean, rstd, rows, cols, eps, addA, addB, sa, sb, fmtA, outFmt, aIn);
}
extern "C" __global__ void softmax_warp_32(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode, int causalRows) {
  softmax_warp<32>(x, out, rows, cols, inScale, outScale, logMode, causalRows);
}
extern "C" __global__ void softmax_grad_warp_32(const float *y, const float *gy, float *gx, int rows, int cols, float gradScale, int logMode) {
  softmax_grad_warp<32>(y, gy, gx, rows, cols, gradScale, logMode);
}
extern "C" __global__ void layer_norm_warp_32(float *x, const float *gamma, const float *beta, void *out, float *mean, float *rstd, int rows, int cols, double eps,
                                                const void *addA, const float *addB, float sa, float sb, int fmtA, int outFmt, int aIn) {
  layer_norm_warp<32, false>(x, gamma, beta, out, mean, rstd, rows, cols, eps, addA, addB, sa, sb, fmtA, outFmt, aIn);
}

/** out[i, :] = table[ids[i], :]; an id outside the table gives a NaN row (the CPU twin throws). */
extern "C" __global__ void gather_rows(const float *table, const int *ids, float *out, int count, int dim, int tableRows) {
  GRID_STRIDE(i, count * dim) {
    int row = i / dim, c = i - row * dim;
    int id = ids[row];
    out[i] = (id >= 0 && id < tableRows) ? table[(long long)id * dim + c] : f32_nan();
  }
}

/**
 * scatter_add_ordered with float atomics (REPRO_CUDA_ATOMIC_SCATTER=1): faster by a few tens of
 * microseconds a step, but the adds land in whatever order the threads arrive, so runs differ in
 * the last bits. Ids outside the table are skipped.
 */
extern "C" __global__ void scatter_add_atomic(const float *gradOut, const int *ids, float *gradTable, int count, int dim, int tableRows, float scale) {
  GRID_STRIDE(i, count * dim) {
    int row = i / dim, c = i - row * dim;
    int id = ids[row];
    if (id >= 0 && id < tableRows) atomicAdd(gradTable + (long long)id * dim + c, scale * gradOut[i]);
  }
}

/**
 * gradTable[ids[i], :] += scale·gradOut[i, :] for i in order, deterministically: block (x, y), one
 * warp, owns table rows [SA_ROWS·x, +SA_ROWS) and columns [32·y, +32); it walks the ids 32·SA_BATCH
 * at a time and adds each match in id order, in double and rounded to float once per add, as the CPU
 * twin does, so the result is bit-identical to it and the same on every run (float atomics would
 * add in whatever order the threads arrive). Ids outside the table are skipped, as typed arrays do.
 */
#define SA_ROWS 32
#define SA_BATCH 8
extern "C" __global__ void scatter_add_ordered(const float *gradOut, const int *ids, float *gradTable, int count, int dim, int tableRows, double scale) {
  __shared__ float acc[SA_ROWS][32];
  const int lane = threadIdx.x;
  const int r0 = blockIdx.x * SA_ROWS;
  const int c = blockIdx.y * 32 + lane;
  const bool column = c < dim;
  #pragma unroll
  for (int r = 0; r < SA_ROWS; ++r) acc[r][lane] = column && r0 + r < tableRows ? gradTable[(long long)(r0 + r) * dim + c] : 0.0f;
  unsigned touched = 0;
  // SA_BATCH groups of 32 ids loaded at once, then matched in id order: one load latency per
  // SA_BATCH groups instead of per group (the walk over every id is what this kernel waits on).
  for (int i0 = 0; i0 < count; i0 += 32 * SA_BATCH) {
    int batch[SA_BATCH];
    #pragma unroll
    for (int u = 0; u < SA_BATCH; ++u) batch[u] = i0 + 32 * u + lane < count ? ids[i0 + 32 * u + lane] : -1;
    #pragma unroll
    for (int u = 0; u < SA_BATCH; ++u) {
      const int id = batch[u];
      unsigned mask = __ballot_sync(0xffffffffu, id >= r0 && id < r0 + SA_ROWS && id < tableRows);
      while (mask) {
        const int j = __ffs(mask) - 1;
        mask &= mask - 1;
        const int r = __shfl_sync(0xffffffffu, id, j) - r0;
        touched |= 1u << r;
        // Each lane updates its own column: no other thread touches acc[r][lane].
        if (column) acc[r][lane] = (float)__dadd_rn((double)acc[r][lane], __dmul_rn(scale, (double)gradOut[(long long)(i0 + 32 * u + j) * dim + c]));
      }
    }
  }
  #pragma unroll
  for (int r = 0; r < SA_ROWS; ++r) if (column && ((touched >> r) & 1u)) gradTable[(long long)(r0 + r) * dim + c] = acc[r][lane];
}

/**
 * Per row mask·(logsumexp − logit[label]) and the logsumexp, a warp per row (no block-wide
 * reductions between a row's passes). logits: float32 or 16-bit storage (logitsFmt, codes as
 * store_in's); vec (vocab % 4 == 0, rows 16-byte aligned): four logits a load.
 */
extern "C" __global__ void cross_entropy_warp(const void *logits, const int *labels, const float *mask, float *loss, float *logSumExp,
                                              int rows, int vocab, int logitsFmt, int vec) {
  const int lane = threadIdx.x & 31;
  WARP_ROWS_LOOP(r) {
    const long long base = (long long)r * vocab;
    float m = -f32_inf();
    if (vec) {
      for (int c4 = lane; c4 < (vocab >> 2); c4 += 32) {
        const float4 v = load4_in(logits, (base >> 2) + c4, logitsFmt);
        m = nan_max(nan_max(m, nan_max(v.x, v.y)), nan_max(v.z, v.w));
      }
    } else {
      for (int c = lane; c < vocab; c += 32) m = nan_max(m, load_in(logits, base + c, logitsFmt));
    }
    m = warp_max(m);
    double sum = 0.0;
    if (vec) {
      for (int c4 = lane; c4 < (vocab >> 2); c4 += 32) {
        const float4 v = load4_in(logits, (base >> 2) + c4, logitsFmt);
        sum += (double)expf(v.x - m) + (double)expf(v.y - m) + (double)expf(v.z - m) + (double)expf(v.w - m);
      }
    } else {
      for (int c = lane; c < vocab; c += 32) sum += (double)expf(load_in(logits, base + c, logitsFmt) - m);
    }
    const double lse = (double)m + log(warp_sum(sum));
    if (lane == 0) {
      logSumExp[r] = (float)lse;
      double w = mask ? (double)mask[r] : 1.0;
      int label = labels[r];
      double picked = (label >= 0 && label < vocab) ? (double)load_in(logits, base + label, logitsFmt) : (double)f32_nan();
      loss[r] = w == 0.0 ? 0.0f : (float)(w * (lse - picked));
    }
  }
}

/** One gradient element of cross_entropy_grad_rows (p, or p − w at the label). */
__device__ __forceinline__ float cross_entropy_grad_value(float logit, float l, double w, bool atLabel) {
  // Single-precision exp: the double one made this pass compute-bound (FP64 exp is ~40
  // instructions); the relative difference from the CPU twin stays at a few float ulps.
  float p = (float)(w * (double)expf(logit - l));
  // The CPU twin stores w·p first and then subtracts w at the label: keep both roundings.
  return atLabel ? (float)((double)p - w) : p;
}

/** cross_entropy_grad_rows four elements a thread (vocab % 4 == 0, rows 16-byte aligned), a warp per row. */
template <int IN, int OUT>
__device__ __forceinline__ void cross_entropy_grad_vec(const void *logits, const int *labels, const float *mask, const float *logSumExp,
                                                       const float *gradLoss, void *gx, int rows, int vocab, double scale) {
  const int lane = threadIdx.x & 31;
  WARP_ROWS_LOOP(r) {
    const long long base4 = ((long long)r * vocab) >> 2;
    const double w = (mask ? (double)mask[r] : 1.0) * (double)gradLoss[r] * scale;
    const int label = labels[r];
    const float l = (float)(double)logSumExp[r];
    for (int c4 = lane; c4 < (vocab >> 2); c4 += 32) {
      float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (w != 0.0) {
        const float4 v = load4_as<IN>(logits, base4 + c4);
        const int c = c4 << 2;
        o = make_float4(cross_entropy_grad_value(v.x, l, w, c == label), cross_entropy_grad_value(v.y, l, w, c + 1 == label),
                        cross_entropy_grad_value(v.z, l, w, c + 2 == label), cross_entropy_grad_value(v.w, l, w, c + 3 == label));
      }
      store4_as<OUT>(gx, base4 + c4, o);
    }
  }
}

extern "C" __global__ void cross_entropy_grad_warp(const void *logits, const int *labels, const float *mask, const float *logSumExp,
                                                   const float *gradLoss, void *gx, int rows, int vocab, double scale, int logitsFmt, int gxFmt) {
  switch (logitsFmt * 3 + gxFmt) {
${[0, 1, 2].flatMap((i) => [0, 1, 2].map((o) => `    case ${i * 3 + o}: cross_entropy_grad_vec<${i}, ${o}>(logits, labels, mask, logSumExp, gradLoss, gx, rows, vocab, scale); break;`)).join('\n')}
  }
}

// logits and gx: float32 or 16-bit storage (gx written rounded to its format).
extern "C" __global__ void cross_entropy_grad_rows(const void *logits, const int *labels, const float *mask, const float *logSumExp,
                                                   const float *gradLoss, void *gx, int rows, int vocab, double scale, int logitsFmt, int gxFmt) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const long long base = (long long)r * vocab;
    double w = (mask ? (double)mask[r] : 1.0) * (double)gradLoss[r] * scale;
    int label = labels[r];
    double l = (double)logSumExp[r];
    for (int c = threadIdx.x; c < vocab; c += blockDim.x) {
      if (w == 0.0) {
        store_in(gx, base + c, 0.0f, gxFmt);
        continue;
      }
      store_in(gx, base + c, cross_entropy_grad_value(load_in(logits, base + c, logitsFmt), (float)l, w, c == label), gxFmt);
    }
  }
}
`;

export const NN_MODULE: KernelModuleSource = { name: 'nn', source: [PRELUDE, SOURCE].join('\n'), options: [] };
