/**
 * Packing of GEMM operands into 16-bit and 8-bit scratch for the tensor-core paths, rounding to
 * nearest-even. The engine has already quantised the values to the format, so the conversion is
 * exact in intended use. The 8-bit packs: dst[b][r][c] = convert(src[b·batchStride + r·rowStride
 * + c·colStride]).
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
/**
 * pack_f16 / pack_bf16: rows of a two-level batch of row-major windows, dst[b][r][c] =
 * convert(src[p·batchStride0 + q·batchStride1 + r·rowStride + c]) with b = p·batch1 + q, written
 * densely (ld = cols). 2^laneShift threads share a row, so no thread divides per element; with
 * vec (cols % 4 == 0, 16-byte aligned rows) each reads a float4 and writes four halves at once.
 * Rows are grid-strided: any grid covers any size.
 */
#define PACK16(NAME, CONVERT) \
extern "C" __global__ void NAME(const float *__restrict__ src, unsigned short *__restrict__ dst, int rows, int cols, long long rowStride, \
                                long long batchStride0, long long batchStride1, int batch1, int totalRows, int vec, int laneShift) { \
  const int lanes = 1 << laneShift; \
  const int t = blockIdx.x * blockDim.x + threadIdx.x; \
  const int lane = t & (lanes - 1); \
  const int slots = (gridDim.x * blockDim.x) >> laneShift; \
  for (int row = t >> laneShift; row < totalRows; row += slots) { \
    const int b = row / rows, r = row - b * rows; \
    const int pb = b / batch1, qb = b - pb * batch1; \
    const float *s = src + pb * batchStride0 + qb * batchStride1 + (long long)r * rowStride; \
    unsigned short *d = dst + (long long)row * cols; \
    if (vec) { \
      for (int c = lane << 2; c < cols; c += lanes << 2) { \
        const float4 v = *reinterpret_cast<const float4 *>(s + c); \
        *reinterpret_cast<uint2 *>(d + c) = \
            make_uint2((u32)CONVERT(v.x) | ((u32)CONVERT(v.y) << 16), (u32)CONVERT(v.z) | ((u32)CONVERT(v.w) << 16)); \
      } \
    } else { \
      for (int c = lane; c < cols; c += lanes) d[c] = CONVERT(s[c]); \
    } \
  } \
}
PACK16(pack_f16, to_half_bits)
PACK16(pack_bf16, to_bf16_bits)
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
