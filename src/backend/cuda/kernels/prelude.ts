/**
 * CUDA C shared by every kernel module: integer types, the grid-stride loop, strided-view offsets
 * and block reductions. NVRTC compiles it without any header.
 */

/** Most dimensions a strided kernel handles after collapsing (see strided.ts). */
export const MAX_RANK = 6;
/** Words of the `Strided` struct: rank, shape[MAX_RANK], stride[3][MAX_RANK]. */
export const STRIDED_WORDS = 1 + MAX_RANK + 3 * MAX_RANK;

export const PRELUDE = String.raw`
typedef unsigned int u32;
typedef unsigned long long u64;
#define MAX_RANK ${MAX_RANK}
#define GRID_STRIDE(i, n) for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

__device__ __forceinline__ float f32_nan() { return __int_as_float(0x7fc00000); }
__device__ __forceinline__ float f32_inf() { return __int_as_float(0x7f800000); }

/** Up to three strided views over one row-major index space. */
struct Strided {
  int rank;
  int shape[MAX_RANK];
  int stride[3][MAX_RANK];
};

/** Element offsets of linear index i in each of the first 'views' views. */
template <int VIEWS>
__device__ __forceinline__ void strided_offsets(const Strided &s, int i, int *off) {
  for (int v = 0; v < VIEWS; ++v) off[v] = 0;
  for (int d = s.rank - 1; d >= 0; --d) {
    int extent = s.shape[d];
    int index = i % extent;
    i /= extent;
    for (int v = 0; v < VIEWS; ++v) off[v] += index * s.stride[v][d];
  }
}

/** Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total. */
__device__ double block_sum(double value) {
  __shared__ double partial[32];
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  int warps = blockDim.x >> 5;
  value = lane < warps ? partial[lane] : 0.0;
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

/** NaN-propagating max/min (as the CPU twin: a NaN anywhere gives NaN). */
__device__ __forceinline__ float nan_max(float a, float b) { return (a != a || b != b) ? f32_nan() : (b > a ? b : a); }
__device__ __forceinline__ float nan_min(float a, float b) { return (a != a || b != b) ? f32_nan() : (b < a ? b : a); }

__device__ float block_max(float value) {
  __shared__ float partial[32];
  for (int offset = 16; offset > 0; offset >>= 1) value = nan_max(value, __shfl_xor_sync(0xffffffffu, value, offset));
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  int warps = blockDim.x >> 5;
  value = lane < warps ? partial[lane] : -f32_inf();
  for (int offset = 16; offset > 0; offset >>= 1) value = nan_max(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

__device__ float block_min(float value) {
  __shared__ float partial[32];
  for (int offset = 16; offset > 0; offset >>= 1) value = nan_min(value, __shfl_xor_sync(0xffffffffu, value, offset));
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  int warps = blockDim.x >> 5;
  value = lane < warps ? partial[lane] : f32_inf();
  for (int offset = 16; offset > 0; offset >>= 1) value = nan_min(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}
`;
