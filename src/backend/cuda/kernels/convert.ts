/**
 * Packing of GEMM operands into 16-bit and 8-bit scratch for the tensor-core paths: dst[b][r][c] =
 * convert(src[b·batchStride + r·rowStride + c·colStride]), rounding to nearest-even. The engine
 * has already quantised the values to the format, so the conversion is exact in intended use.
 */
import type { KernelModuleSource } from '../modules.ts';
import { PRELUDE } from './prelude.ts';

const PACK_LOOP = String.raw`
  long long perBatch = (long long)rows * cols;
  long long total = perBatch * batches;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
    long long b = i / perBatch;
    long long within = i - b * perBatch;
    long long r = within / cols, c = within - r * cols;
    float v = src[b * batchStride + r * rowStride + c * colStride];
`;

const SOURCE16 = String.raw`
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
extern "C" __global__ void pack_f16(const float *src, unsigned short *dst, int rows, int cols, long long rowStride, long long colStride,
                                    long long batchStride, int batches) {
${PACK_LOOP}
    dst[i] = to_half_bits(v);
  }
}
extern "C" __global__ void pack_bf16(const float *src, unsigned short *dst, int rows, int cols, long long rowStride, long long colStride,
                                     long long batchStride, int batches) {
${PACK_LOOP}
    dst[i] = to_bf16_bits(v);
  }
}
`;

const SOURCE8 = String.raw`
extern "C" __global__ void pack_e4m3(const float *src, unsigned char *dst, int rows, int cols, long long rowStride, long long colStride,
                                     long long batchStride, int batches) {
${PACK_LOOP}
    unsigned short pair;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(0.0f), "f"(v));
    dst[i] = (unsigned char)(pair & 0xffu);
  }
}
extern "C" __global__ void pack_e5m2(const float *src, unsigned char *dst, int rows, int cols, long long rowStride, long long colStride,
                                     long long batchStride, int batches) {
${PACK_LOOP}
    unsigned short pair;
    asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(0.0f), "f"(v));
    dst[i] = (unsigned char)(pair & 0xffu);
  }
}
`;

export const CONVERT16_MODULE: KernelModuleSource = { name: 'convert16', source: [PRELUDE, SOURCE16].join('\n'), options: [] };
/** Needs compute capability 8.9 or newer (the FP8 conversion instructions). */
export const CONVERT8_MODULE: KernelModuleSource = { name: 'convert8', source: [PRELUDE, SOURCE8].join('\n'), options: [] };
