/**
 * A plain FP32 GEMM for products too small for cuBLAS to pay off: one warp per output element,
 * a float accumulation over k split across the lanes. The recurrent cell's per-timestep products (8×256×128) take
 * cuBLAS ~8 µs each, and FP16/BF16 ones three launches (two operand packs and the GEMM); this
 * takes one launch of ~2-3 µs. Operands of the low-precision paths are already quantised by the
 * engine, so the FP32 products here are exact and only the accumulation order differs from cuBLAS.
 */
import type { KernelModuleSource } from '../modules.ts';
import { PRELUDE } from './prelude.ts';

/** 32-bit words write_words carries per launch (256 device pointers; kernel parameters may take 4 KB). */
export const POINTER_WORDS = 512;

const SOURCE = String.raw`
// One warp per output element: the lanes split k and reduce with shuffles, so an 8×128 output
// with k = 256 still spreads over the whole GPU instead of 4 blocks of long serial loops.
extern "C" __global__ void gemm_small(const float *a, const float *b, float *c, int m, int n, int k, int lda, int ldb, int ldc,
                                      long long strideA, long long strideB, long long strideC, int batch, int transA, int transB,
                                      float alpha, float beta) {
  long long total = (long long)m * n * batch;
  int lane = threadIdx.x & 31;
  long long warps = ((long long)gridDim.x * blockDim.x) >> 5;
  for (long long idx = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5; idx < total; idx += warps) {
    int j = (int)(idx % n);
    int i = (int)((idx / n) % m);
    long long q = idx / ((long long)m * n);
    const float *ap = a + q * strideA;
    const float *bp = b + q * strideB;
    // Row i of op(A) and column j of op(B), as (first element, step).
    const float *ar = transA ? ap + i : ap + (long long)i * lda;
    long long aStep = transA ? lda : 1;
    const float *bc = transB ? bp + (long long)j * ldb : bp + j;
    long long bStep = transB ? 1 : ldb;
    float acc = 0.0f;
    for (int l = lane; l < k; l += 32) acc = fmaf(ar[l * aStep], bc[l * bStep], acc);
    for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
    if (lane == 0) {
      float *out = c + q * strideC + (long long)i * ldc + j;
      // beta = 0 overwrites (C may hold NaN), as BLAS does.
      *out = beta == 0.0f ? alpha * acc : alpha * acc + beta * *out;
    }
  }
}

// Element r of output matrix e (entries of m·n elements; parts is [entries, chunks, m, n]): its
// chunks' partial products summed in chunk order, written to cEntry (+ beta times what it held).
__device__ __forceinline__ void sum_chunks_element(const float *parts, float *cEntry, long long e, long long r, long long size, int n, int ldc, int chunks, float beta) {
  const float *part = parts + e * chunks * size + r;
  float acc = 0.0f;
  for (int k = 0; k < chunks; k++) acc += part[k * size];
  float *out = cEntry + (r / n) * ldc + r % n;
  *out = beta == 0.0f ? acc : acc + beta * *out;
}

// C[q] = Σ_c parts[q·chunks + c] (+ beta·C[q]): the partial products of a GEMM whose k range was
// split into chunks (gemm.ts, splitK), batch entry q's C at c + q·strideC.
extern "C" __global__ void sum_chunks(const float *parts, float *c, int m, int n, int ldc, long long strideC, int batch, int chunks, float beta) {
  const long long size = (long long)m * n;
  const long long total = size * batch;
  for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (long long)gridDim.x * blockDim.x) {
    const long long q = idx / size;
    sum_chunks_element(parts, c + q * strideC, q, idx - q * size, size, n, ldc, chunks, beta);
  }
}

// The same for the products of a grouped split-k call (gemm.ts, grouped), each product's C at its
// own address (cTable[e]).
extern "C" __global__ void sum_chunks_table(const float *parts, const u64 *cTable, int m, int n, int ldc, int count, int chunks, float beta) {
  const long long size = (long long)m * n;
  const long long total = size * count;
  for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (long long)gridDim.x * blockDim.x) {
    const long long e = idx / size;
    sum_chunks_element(parts, reinterpret_cast<float *>(cTable[e]), e, idx - e * size, size, n, ldc, chunks, beta);
  }
}

// dst[i] = words[i] for i < count: device pointer arrays for cublasSgemmBatched, written by a
// kernel (its arguments are captured with it) rather than a host copy, so a CUDA graph replays them.
struct PointerWords {
  u32 w[${POINTER_WORDS}];
};
extern "C" __global__ void write_words(PointerWords words, int count, u32 *dst) {
  for (int i = threadIdx.x; i < count; i += blockDim.x) dst[i] = words.w[i];
}
`;

export const GEMM_SMALL_MODULE: KernelModuleSource = { name: 'gemm-small', source: [PRELUDE, SOURCE].join('\n'), options: [] };
