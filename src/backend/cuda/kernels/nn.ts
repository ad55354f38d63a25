/**
 * Row-wise kernels (softmax, layer norm, cross-entropy; one block per row) and embedding
 * gather/scatter. Row statistics accumulate in float64 like the CPU twin.
 */
import type { KernelModuleSource } from '../modules.ts';
import { PRELUDE } from './prelude.ts';

export const WARP_ROW_WIDTHS = [1, 2, 4, 8, 16, 32] as const;

const SOURCE = String.raw`
extern "C" __global__ void softmax_rows(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + (long long)r * cols;
    float *outr = out + (long long)r * cols;
    float m = -f32_inf();
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = nan_max(m, inScale * xr[c]);
    m = block_max(m);
    double sum = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += (double)expf(inScale * xr[c] - m);
    sum = block_sum(sum);
    if (logMode) {
      double lse = (double)m + log(sum);
      for (int c = threadIdx.x; c < cols; c += blockDim.x) outr[c] = (float)((double)outScale * ((double)inScale * (double)xr[c] - lse));
    } else {
      double k = (double)outScale / sum;
      for (int c = threadIdx.x; c < cols; c += blockDim.x) outr[c] = (float)(k * (double)expf(inScale * xr[c] - m));
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

extern "C" __global__ void layer_norm_rows(const float *x, const float *gamma, const float *beta, float *out, float *mean, float *rstd,
                                           int rows, int cols, double eps) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + (long long)r * cols;
    float *outr = out + (long long)r * cols;
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
      outr[c] = (float)v;
    }
    __syncthreads();
  }
}

/** gradX of layer norm, one block per row; gamma and beta gradients come from layer_norm_param_grads. */
extern "C" __global__ void layer_norm_grad_rows(const float *x, const float *gamma, const float *mean, const float *rstd, const float *gy,
                                                float *gx, int rows, int cols, double gradXScale) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + (long long)r * cols;
    const float *gyr = gy + (long long)r * cols;
    float *gxr = gx + (long long)r * cols;
    double mu = (double)mean[r], rs = (double)rstd[r];
    double sumD = 0.0, sumDX = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      double xhat = ((double)xr[c] - mu) * rs;
      double d = (double)gyr[c] * (gamma ? (double)gamma[c] : 1.0);
      sumD += d;
      sumDX += d * xhat;
    }
    double meanD = block_sum(sumD) / cols;
    double meanDX = block_sum(sumDX) / cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      double xhat = ((double)xr[c] - mu) * rs;
      double d = (double)gyr[c] * (gamma ? (double)gamma[c] : 1.0);
      gxr[c] = (float)(gradXScale * rs * (d - meanD - xhat * meanDX));
    }
    __syncthreads();
  }
}

/** Column sums Σ_r gy·x̂ and Σ_r gy; 1024 threads = 32 columns × 32 row lanes. */
extern "C" __global__ void layer_norm_param_grads(const float *x, const float *mean, const float *rstd, const float *gy, float *gGamma,
                                                  float *gBeta, int rows, int cols, double gammaScale, double betaScale) {
  __shared__ double partialGamma[32][33];
  __shared__ double partialBeta[32][33];
  int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  int c = blockIdx.x * 32 + tx;
  double accGamma = 0.0, accBeta = 0.0;
  if (c < cols) {
    for (int r = ty; r < rows; r += 32) {
      double g = (double)gy[(long long)r * cols + c];
      double xhat = ((double)x[(long long)r * cols + c] - (double)mean[r]) * (double)rstd[r];
      accGamma += g * xhat;
      accBeta += g;
    }
  }
  partialGamma[ty][tx] = accGamma;
  partialBeta[ty][tx] = accBeta;
  __syncthreads();
  if (ty == 0 && c < cols) {
    double sg = 0.0, sb = 0.0;
    for (int k = 0; k < 32; ++k) {
      sg += partialGamma[k][tx];
      sb += partialBeta[k][tx];
    }
    if (gGamma) gGamma[c] = (float)(gammaScale * sg);
    if (gBeta) gBeta[c] = (float)(betaScale * sb);
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
__device__ __forceinline__ void softmax_warp(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode) {
  int lane = threadIdx.x & 31;
  WARP_ROWS_LOOP(r) {
    const float *xr = x + (long long)r * cols;
    float *outr = out + (long long)r * cols;
    float v[K];
    float m = -f32_inf();
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      int c = lane + 32 * k;
      v[k] = c < cols ? xr[c] : 0.0f;
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

template <int K>
__device__ __forceinline__ void layer_norm_warp(const float *x, const float *gamma, const float *beta, float *out, float *mean, float *rstd,
                                                int rows, int cols, double eps) {
  int lane = threadIdx.x & 31;
  WARP_ROWS_LOOP(r) {
    const float *xr = x + (long long)r * cols;
    float *outr = out + (long long)r * cols;
    float v[K];
    double sum = 0.0;
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      int c = lane + 32 * k;
      v[k] = c < cols ? xr[c] : 0.0f;
      sum += (double)v[k];
    }
    double mu = warp_sum(sum) / cols;
    double sq = 0.0;
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      double d = (double)v[k] - mu;
      if (lane + 32 * k < cols) sq += d * d;
    }
    double rs = 1.0 / sqrt(warp_sum(sq) / cols + eps);
    if (lane == 0) {
      mean[r] = (float)mu;
      rstd[r] = (float)rs;
    }
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      int c = lane + 32 * k;
      if (c >= cols) continue;
      double o = ((double)v[k] - mu) * rs;
      if (gamma) o *= (double)gamma[c];
      if (beta) o += (double)beta[c];
      outr[c] = (float)o;
    }
  }
}

template <int K>
__device__ __forceinline__ void layer_norm_grad_warp(const float *x, const float *gamma, const float *mean, const float *rstd, const float *gy,
                                                     float *gx, int rows, int cols, double gradXScale) {
  int lane = threadIdx.x & 31;
  WARP_ROWS_LOOP(r) {
    const float *xr = x + (long long)r * cols;
    const float *gyr = gy + (long long)r * cols;
    float *gxr = gx + (long long)r * cols;
    double mu = (double)mean[r], rs = (double)rstd[r];
    float xv[K], gv[K];
    double sumD = 0.0, sumDX = 0.0;
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      int c = lane + 32 * k;
      bool in = c < cols;
      xv[k] = in ? xr[c] : 0.0f;
      gv[k] = in ? gyr[c] : 0.0f;
      double xhat = ((double)xv[k] - mu) * rs;
      double d = in ? (double)gv[k] * (gamma ? (double)gamma[c] : 1.0) : 0.0;
      sumD += d;
      sumDX += d * xhat;
    }
    double meanD = warp_sum(sumD) / cols;
    double meanDX = warp_sum(sumDX) / cols;
    #pragma unroll
    for (int k = 0; k < K; ++k) {
      int c = lane + 32 * k;
      if (c >= cols) continue;
      double xhat = ((double)xv[k] - mu) * rs;
      double d = (double)gv[k] * (gamma ? (double)gamma[c] : 1.0);
      gxr[c] = (float)(gradXScale * rs * (d - meanD - xhat * meanDX));
    }
  }
}

/**
 * Pass 1 of the gamma/beta gradients: block (bx, by) sums Σ gy·x̂ and Σ gy over rows
 * [by·chunkRows, (by+1)·chunkRows) of 32 columns into partial[by][column] (fixed order, no atomics).
 * 1024 threads = 32 columns × 32 row lanes.
 */
extern "C" __global__ void layer_norm_param_partials(const float *x, const float *mean, const float *rstd, const float *gy, double *partialGamma,
                                                     double *partialBeta, int rows, int cols, int chunkRows) {
  __shared__ double sharedGamma[32][33];
  __shared__ double sharedBeta[32][33];
  int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  int c = blockIdx.x * 32 + tx;
  int first = blockIdx.y * chunkRows;
  int last = min(rows, first + chunkRows);
  double accGamma = 0.0, accBeta = 0.0;
  if (c < cols) {
    for (int r = first + ty; r < last; r += 32) {
      double g = (double)gy[(long long)r * cols + c];
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

/** Pass 2: one thread per column adds the chunks in order. */
extern "C" __global__ void layer_norm_param_finish(const double *partialGamma, const double *partialBeta, float *gGamma, float *gBeta, int chunks,
                                                   int cols, double gammaScale, double betaScale) {
  GRID_STRIDE(c, cols) {
    double sg = 0.0, sb = 0.0;
    for (int k = 0; k < chunks; ++k) {
      sg += partialGamma[(long long)k * cols + c];
      sb += partialBeta[(long long)k * cols + c];
    }
    if (gGamma) gGamma[c] = (float)(gammaScale * sg);
    if (gBeta) gBeta[c] = (float)(betaScale * sb);
  }
}

extern "C" __global__ void softmax_warp_1(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode) {
  softmax_warp<1>(x, out, rows, cols, inScale, outScale, logMode);
}
extern "C" __global__ void softmax_grad_warp_1(const float *y, const float *gy, float *gx, int rows, int cols, float gradScale, int logMode) {
  softmax_grad_warp<1>(y, gy, gx, rows, cols, gradScale, logMode);
}
extern "C" __global__ void layer_norm_warp_1(const float *x, const float *gamma, const float *beta, float *out, float *mean, float *rstd, int rows, int cols, double eps) {
  layer_norm_warp<1>(x, gamma, beta, out, mean, rstd, rows, cols, eps);
}
extern "C" __global__ void layer_norm_grad_warp_1(const float *x, const float *gamma, const float *mean, const float *rstd, const float *gy, float *gx, int rows, int cols, double gradXScale) {
  layer_norm_grad_warp<1>(x, gamma, mean, rstd, gy, gx, rows, cols, gradXScale);
}
extern "C" __global__ void softmax_warp_2(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode) {
  softmax_warp<2>(x, out, rows, cols, inScale, outScale, logMode);
}
extern "C" __global__ void softmax_grad_warp_2(const float *y, const float *gy, float *gx, int rows, int cols, float gradScale, int logMode) {
  softmax_grad_warp<2>(y, gy, gx, rows, cols, gradScale, logMode);
}
extern "C" __global__ void layer_norm_warp_2(const float *x, const float *gamma, const float *beta, float *out, float *mean, float *rstd, int rows, int cols, double eps) {
  layer_norm_warp<2>(x, gamma, beta, out, mean, rstd, rows, cols, eps);
}
extern "C" __global__ void layer_norm_grad_warp_2(const float *x, const float *gamma, const float *mean, const float *rstd, const float *gy, float *gx, int rows, int cols, double gradXScale) {
  layer_norm_grad_warp<2>(x, gamma, mean, rstd, gy, gx, rows, cols, gradXScale);
}
extern "C" __global__ void softmax_warp_4(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode) {
  softmax_warp<4>(x, out, rows, cols, inScale, outScale, logMode);
}
extern "C" __global__ void softmax_grad_warp_4(const float *y, const float *gy, float *gx, int rows, int cols, float gradScale, int logMode) {
  softmax_grad_warp<4>(y, gy, gx, rows, cols, gradScale, logMode);
}
extern "C" __global__ void layer_norm_warp_4(const float *x, const float *gamma, const float *beta, float *out, float *mean, float *rstd, int rows, int cols, double eps) {
  layer_norm_warp<4>(x, gamma, beta, out, mean, rstd, rows, cols, eps);
}
extern "C" __global__ void layer_norm_grad_warp_4(const float *x, const float *gamma, const float *mean, const float *rstd, const float *gy, float *gx, int rows, int cols, double gradXScale) {
  layer_norm_grad_warp<4>(x, gamma, mean, rstd, gy, gx, rows, cols, gradXScale);
}
extern "C" __global__ void softmax_warp_8(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode) {
  softmax_warp<8>(x, out, rows, cols, inScale, outScale, logMode);
}
extern "C" __global__ void softmax_grad_warp_8(const float *y, const float *gy, float *gx, int rows, int cols, float gradScale, int logMode) {
  softmax_grad_warp<8>(y, gy, gx, rows, cols, gradScale, logMode);
}
extern "C" __global__ void layer_norm_warp_8(const float *x, const float *gamma, const float *beta, float *out, float *mean, float *rstd, int rows, int cols, double eps) {
  layer_norm_warp<8>(x, gamma, beta, out, mean, rstd, rows, cols, eps);
}
extern "C" __global__ void layer_norm_grad_warp_8(const float *x, const float *gamma, const float *mean, const float *rstd, const float *gy, float *gx, int rows, int cols, double gradXScale) {
  layer_norm_grad_warp<8>(x, gamma, mean, rstd, gy, gx, rows, cols, gradXScale);
}
extern "C" __global__ void softmax_warp_16(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode) {
  softmax_warp<16>(x, out, rows, cols, inScale, outScale, logMode);
}
extern "C" __global__ void softmax_grad_warp_16(const float *y, const float *gy, float *gx, int rows, int cols, float gradScale, int logMode) {
  softmax_grad_warp<16>(y, gy, gx, rows, cols, gradScale, logMode);
}
extern "C" __global__ void layer_norm_warp_16(const float *x, const float *gamma, const float *beta, float *out, float *mean, float *rstd, int rows, int cols, double eps) {
  layer_norm_warp<16>(x, gamma, beta, out, mean, rstd, rows, cols, eps);
}
extern "C" __global__ void layer_norm_grad_warp_16(const float *x, const float *gamma, const float *mean, const float *rstd, const float *gy, float *gx, int rows, int cols, double gradXScale) {
  layer_norm_grad_warp<16>(x, gamma, mean, rstd, gy, gx, rows, cols, gradXScale);
}
extern "C" __global__ void softmax_warp_32(const float *x, float *out, int rows, int cols, float inScale, float outScale, int logMode) {
  softmax_warp<32>(x, out, rows, cols, inScale, outScale, logMode);
}
extern "C" __global__ void softmax_grad_warp_32(const float *y, const float *gy, float *gx, int rows, int cols, float gradScale, int logMode) {
  softmax_grad_warp<32>(y, gy, gx, rows, cols, gradScale, logMode);
}
extern "C" __global__ void layer_norm_warp_32(const float *x, const float *gamma, const float *beta, float *out, float *mean, float *rstd, int rows, int cols, double eps) {
  layer_norm_warp<32>(x, gamma, beta, out, mean, rstd, rows, cols, eps);
}
extern "C" __global__ void layer_norm_grad_warp_32(const float *x, const float *gamma, const float *mean, const float *rstd, const float *gy, float *gx, int rows, int cols, double gradXScale) {
  layer_norm_grad_warp<32>(x, gamma, mean, rstd, gy, gx, rows, cols, gradXScale);
}

/** out[i, :] = table[ids[i], :]; an id outside the table gives a NaN row (the CPU twin throws). */
extern "C" __global__ void gather_rows(const float *table, const int *ids, float *out, int count, int dim, int tableRows) {
  GRID_STRIDE(i, count * dim) {
    int row = i / dim, c = i - row * dim;
    int id = ids[row];
    out[i] = (id >= 0 && id < tableRows) ? table[(long long)id * dim + c] : f32_nan();
  }
}

/** gradTable[ids[i], :] += scale·gradOut[i, :]; ids outside the table are skipped, as typed arrays do. */
extern "C" __global__ void scatter_add_rows(const float *gradOut, const int *ids, float *gradTable, int count, int dim, int tableRows, float scale) {
  GRID_STRIDE(i, count * dim) {
    int row = i / dim, c = i - row * dim;
    int id = ids[row];
    if (id >= 0 && id < tableRows) atomicAdd(gradTable + (long long)id * dim + c, scale * gradOut[i]);
  }
}

extern "C" __global__ void cross_entropy_rows(const float *logits, const int *labels, const float *mask, float *loss, float *logSumExp,
                                              int rows, int vocab) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *lr = logits + (long long)r * vocab;
    float m = -f32_inf();
    for (int c = threadIdx.x; c < vocab; c += blockDim.x) m = nan_max(m, lr[c]);
    m = block_max(m);
    double sum = 0.0;
    for (int c = threadIdx.x; c < vocab; c += blockDim.x) sum += (double)expf(lr[c] - m);
    double lse = (double)m + log(block_sum(sum));
    if (threadIdx.x == 0) {
      logSumExp[r] = (float)lse;
      double w = mask ? (double)mask[r] : 1.0;
      int label = labels[r];
      double picked = (label >= 0 && label < vocab) ? (double)lr[label] : (double)f32_nan();
      loss[r] = w == 0.0 ? 0.0f : (float)(w * (lse - picked));
    }
    __syncthreads();
  }
}

extern "C" __global__ void cross_entropy_grad_rows(const float *logits, const int *labels, const float *mask, const float *logSumExp,
                                                   const float *gradLoss, float *gx, int rows, int vocab, double scale) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *lr = logits + (long long)r * vocab;
    float *gr = gx + (long long)r * vocab;
    double w = (mask ? (double)mask[r] : 1.0) * (double)gradLoss[r] * scale;
    int label = labels[r];
    double l = (double)logSumExp[r];
    for (int c = threadIdx.x; c < vocab; c += blockDim.x) {
      if (w == 0.0) {
        gr[c] = 0.0f;
        continue;
      }
      float p = (float)(w * exp((double)lr[c] - l));
      // The CPU twin stores w·p first and then subtracts w at the label: keep both roundings.
      gr[c] = c == label ? (float)((double)p - w) : p;
    }
  }
}
`;

export const NN_MODULE: KernelModuleSource = { name: 'nn', source: [PRELUDE, SOURCE].join('\n'), options: [] };
