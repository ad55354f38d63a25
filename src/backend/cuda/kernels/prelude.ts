/**
 * CUDA C shared by every kernel module: integer types, the grid-stride loop, strided-view offsets
 * and block reductions. NVRTC compiles it without any header.
 */
import { isFormat16, type DType, type Format16 } from '../../backend.ts';

/** Most dimensions a strided kernel handles after collapsing (see strided.ts). */
export const MAX_RANK = 6;
/** Words of the `Strided` struct: rank, shape[MAX_RANK], magic[MAX_RANK], shift[MAX_RANK], stride[3][MAX_RANK]. */
export const STRIDED_WORDS = 1 + 3 * MAX_RANK + 3 * MAX_RANK;

/** A kernel's `fmt` argument for a read format (rounded_as / read_rounded below), or its `outFmt` for 16-bit output storage (store_as). */
export function readFormatCode(format: Format16 | undefined): number {
  return format === undefined ? 0 : format === 'bf16' ? 1 : 2;
}

/** A kernel's `outFmt` argument for its output storage's type (store_as below). */
export function storageFormatCode(dtype: DType): number {
  if (dtype === 'f32') return 0;
  if (isFormat16(dtype)) return readFormatCode(dtype);
  throw new TypeError(`kernel output must be float32 or 16-bit storage, got ${dtype}`);
}

export const PRELUDE = String.raw`
typedef unsigned int u32;
typedef unsigned long long u64;
#define MAX_RANK ${MAX_RANK}
#define GRID_STRIDE(i, n) for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

__device__ __forceinline__ float f32_nan() { return __int_as_float(0x7fc00000); }
__device__ __forceinline__ float f32_inf() { return __int_as_float(0x7f800000); }

/** v as a kernel with read format FMT reads it: 0 as stored, 1 rounded to BF16, 2 to FP16 (nearest-even, overflow to infinity). */
template <int FMT>
__device__ __forceinline__ float rounded_as(float v) {
  if (FMT == 0) return v;
  if (FMT == 1) {
    u32 b = __float_as_uint(v);
    if ((b & 0x7fffffffu) > 0x7f800000u) return v;
    b += 0x7fffu + ((b >> 16) & 1u);
    return __uint_as_float(b & 0xffff0000u);
  }
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}

/** The 16-bit codes of v rounded to nearest-even (overflow to infinity; NaN stays NaN). */
__device__ __forceinline__ unsigned short to_half_bits(float v) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
  return h;
}
__device__ __forceinline__ unsigned short to_bf16_bits(float v) {
  u32 b = __float_as_uint(v);
  if ((b & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((b >> 16) | 0x40u);
  b += 0x7fffu + ((b >> 16) & 1u);
  return (unsigned short)(b >> 16);
}

/**
 * Element i of an output of type OUT (codes as readFormatCode's: 0 float32, 1 BF16, 2 FP16 storage),
 * written rounded to its format; store4_as writes elements 4i..4i+3 (16-byte aligned float32, 8-byte 16-bit).
 */
template <int OUT>
__device__ __forceinline__ void store_as(void *out, long long i, float v) {
  if (OUT == 0) static_cast<float *>(out)[i] = v;
  else static_cast<unsigned short *>(out)[i] = OUT == 1 ? to_bf16_bits(v) : to_half_bits(v);
}
template <int OUT>
__device__ __forceinline__ void store4_as(void *out, long long i, float4 v) {
  if (OUT == 0) {
    static_cast<float4 *>(out)[i] = v;
  } else {
    u32 lo = OUT == 1 ? ((u32)to_bf16_bits(v.x) | ((u32)to_bf16_bits(v.y) << 16)) : ((u32)to_half_bits(v.x) | ((u32)to_half_bits(v.y) << 16));
    u32 hi = OUT == 1 ? ((u32)to_bf16_bits(v.z) | ((u32)to_bf16_bits(v.w) << 16)) : ((u32)to_half_bits(v.z) | ((u32)to_half_bits(v.w) << 16));
    static_cast<uint2 *>(out)[i] = make_uint2(lo, hi);
  }
}

/** Element i of an input of storage type IN (codes as store_as's) as float; load4_as reads elements 4i..4i+3. */
__device__ __forceinline__ float from_bits16(unsigned short h, int in) {
  if (in == 1) return __uint_as_float((u32)h << 16);
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
template <int IN>
__device__ __forceinline__ float load_as(const void *p, long long i) {
  if (IN == 0) return static_cast<const float *>(p)[i];
  return from_bits16(static_cast<const unsigned short *>(p)[i], IN);
}
template <int IN>
__device__ __forceinline__ float4 load4_as(const void *p, long long i) {
  if (IN == 0) return static_cast<const float4 *>(p)[i];
  uint2 w = static_cast<const uint2 *>(p)[i];
  return make_float4(from_bits16((unsigned short)(w.x & 0xffffu), IN), from_bits16((unsigned short)(w.x >> 16), IN),
                     from_bits16((unsigned short)(w.y & 0xffffu), IN), from_bits16((unsigned short)(w.y >> 16), IN));
}

/** load_as with the input's type known only at run time. */
__device__ __forceinline__ float load_in(const void *p, long long i, int in) {
  return in == 0 ? load_as<0>(p, i) : in == 1 ? load_as<1>(p, i) : load_as<2>(p, i);
}

/** load4_as with the input's type known only at run time. */
__device__ __forceinline__ float4 load4_in(const void *p, long long i, int in) {
  return in == 0 ? load4_as<0>(p, i) : in == 1 ? load4_as<1>(p, i) : load4_as<2>(p, i);
}

/** store_as with the output's type known only at run time (kernels that write few outputs per load). */
__device__ __forceinline__ void store_in(void *out, long long i, float v, int outFmt) {
  if (outFmt == 0) store_as<0>(out, i, v);
  else if (outFmt == 1) store_as<1>(out, i, v);
  else store_as<2>(out, i, v);
}

/** store4_as with the output's type known only at run time. */
__device__ __forceinline__ void store4_in(void *out, long long i, float4 v, int outFmt) {
  if (outFmt == 0) store4_as<0>(out, i, v);
  else if (outFmt == 1) store4_as<1>(out, i, v);
  else store4_as<2>(out, i, v);
}

/** rounded_as with the format known only at run time (kernels where the rounding is off the hot loop). */
__device__ __forceinline__ float read_rounded(float v, int fmt) {
  return fmt == 0 ? v : fmt == 1 ? rounded_as<1>(v) : rounded_as<2>(v);
}

/**
 * Up to three strided views over one row-major index space. Each extent comes with a
 * multiply-shift pair (see strided.ts) so the index decomposition costs a __umulhi per axis
 * instead of an integer division.
 */
struct Strided {
  int rank;
  int shape[MAX_RANK];
  u32 magic[MAX_RANK];
  int shift[MAX_RANK];
  int stride[3][MAX_RANK];
};

/**
 * The entry of a multi-tensor table (adamw_multi, quantise_multi) that owns the given work chunk:
 * entries are in order of their chunkStart (the chunk counts of the entries before them, summed).
 */
template <typename Entry>
__device__ __forceinline__ int chunk_owner(const Entry *table, int count, int chunk) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) >> 1;
    if (table[mid].chunkStart <= chunk) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** index / d for index < 2^31, from the host's (magic, shift); magic 0 marks d = 1. */
__device__ __forceinline__ u32 fast_div(u32 index, u32 magic, int shift) {
  return magic ? (__umulhi(index, magic) >> shift) : index;
}

/** Element offsets of linear index i (< the view's element count) in each of the first VIEWS views. */
template <int VIEWS>
__device__ __forceinline__ void strided_offsets(const Strided &s, int i, int *off) {
  #pragma unroll
  for (int v = 0; v < VIEWS; ++v) off[v] = 0;
  u32 index = (u32)i;
  for (int d = s.rank - 1; d > 0; --d) {
    u32 q = fast_div(index, s.magic[d], s.shift[d]);
    int within = (int)(index - q * (u32)s.shape[d]);
    index = q;
    #pragma unroll
    for (int v = 0; v < VIEWS; ++v) off[v] += within * s.stride[v][d];
  }
  // The outermost index needs no division: i is below the element count.
  if (s.rank > 0) {
    #pragma unroll
    for (int v = 0; v < VIEWS; ++v) off[v] += (int)index * s.stride[v][0];
  }
}

/** Four floats at p[off] (vector) or p[off] repeated (a view broadcast along the innermost axis). */
__device__ __forceinline__ float4 load4(const float *p, int off, bool vector) {
  if (vector) return *reinterpret_cast<const float4 *>(p + off);
  float v = p[off];
  return make_float4(v, v, v, v);
}

__device__ __forceinline__ double warp_sum(double value) {
  #pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
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

__device__ __forceinline__ float warp_max(float value) {
  #pragma unroll
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
