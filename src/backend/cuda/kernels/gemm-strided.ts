/**
 * gemm_strided: an FP32 SIMT GEMM over two batch levels with arbitrary strides (host wrapper in
 * ../gemm-strided-ops.ts). cuBLAS takes one batch stride per operand, so products that read
 * per-(sequence, head) windows out of a fused [B, S, 3, H, D] buffer would need copies first; and
 * it cannot skip the tiles a causal mask makes zero, which halves attention's score products.
 *
 * Geometry: a block computes a TM×64 tile of C (TM = 64, or 32 when the product has too few
 * 64-row tiles to occupy every multiprocessor, e.g. attention's [256, 64] outputs at the paper's
 * size) with 256 threads, thread (ty, tx) = (tid / 16, tid % 16) owning the RM×4 micro-tile
 * (RM = TM / 16) at rows RM·ty, columns 4·tx. k advances 32 at a time through shared tiles stored
 * k-major (As[kk][row], Bs[kk][col]), so each kk costs one read of RM floats of A, one float4 of B
 * and 4·RM FMAs. Two shared buffers: the next k-tile is loaded into registers while the current
 * one is multiplied, then stored into the other buffer, so one __syncthreads per k-step suffices.
 * Loads come in float4s of 4 consecutive k of one row where the operand is contiguous along k (A
 * as stored m×k, B as stored n×k), else of 4 consecutive rows (columns) of one k. Vector global
 * accesses only where the host vouched for 16-byte alignment.
 * A launch carries one or two independent products (GsProblem each), the second's batch entries
 * after the first's in grid z, so two small products run side by side.
 * Tensor cores (gemm_strided_tc, for every inputFormat but fp32): the shared tiles are
 * multiplied by mma.sync m16n8k8 in TF32 with FP32 accumulation instead of by the FMA loop, each
 * operand rounded to TF32 first (cvt.rna), which leaves 16-bit and FP8 values exact. A warp owns
 * 16 rows × TM/2 columns of the tile; the accumulators go through shared memory into the FMA
 * path's per-thread layout, so the epilogue (alpha, beta, causal zeros) is shared. A kernel of its
 * own, not a branch in gemm_strided: sharing one kernel cost the FP32 path's products 4% (H200).
 */
import type { KernelModuleSource } from '../modules.ts';
import { PRELUDE } from './prelude.ts';

/** Columns of C per block, and its largest number of rows (the granularity of the causal skipping). */
export const GEMM_STRIDED_TILE = 64;
export const GEMM_STRIDED_THREADS = 256;
/** 32-bit words of the kernel's GsProblem struct: 3 pointers, 6 int64 strides, 14 ints, 2 floats, 2 ints (144 bytes). */
export const GEMM_STRIDED_PROBLEM_WORDS = 36;
/** Codes of the kernel's `causal` field. */
export const GEMM_STRIDED_CAUSAL = { none: 0, 'lower-output': 1, 'k-to-row': 2, 'k-from-row': 3 } as const;

const SOURCE = String.raw`
#define GS_TILE ${GEMM_STRIDED_TILE}
#define GS_BK 32
// float4s of a ROWS × COLS tile that each thread carries (at least one); GS_N: of an R-row (or
// R-column) k-tile.
#define GS_TILE_N(ROWS, COLS) (((ROWS) * (COLS) / 4 + GS_THREADS - 1) / GS_THREADS)
#define GS_N(R) GS_TILE_N(R, GS_BK)
// +4 keeps every k-row 16-byte aligned for the float4 reads.
#define GS_LD (GS_TILE + 4)
#define GS_THREADS ${GEMM_STRIDED_THREADS}

typedef float GsTile[GS_BK][GS_LD];

// Elements (row, col … col+3) of a row-major rows×cols matrix, zero outside it.
__device__ __forceinline__ float4 gs_load4(const float *__restrict__ p, int ld, int rows, int cols, int row, int col, bool vec) {
  float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (row < rows) {
    const float *q = p + (long long)row * ld + col;
    if (vec && col + 3 < cols) {
      v = __ldg(reinterpret_cast<const float4 *>(q));
    } else {
      if (col < cols) v.x = __ldg(q);
      if (col + 1 < cols) v.y = __ldg(q + 1);
      if (col + 2 < cols) v.z = __ldg(q + 2);
      if (col + 3 < cols) v.w = __ldg(q + 3);
    }
  }
  return v;
}

// A ROWS × COLS tile of a row-major operand, rows from r0 and columns from c0 (rowLimit × colLimit
// in all): float4 number e = it·GS_THREADS + tid holds row r0 + e/(COLS/4), columns from
// c0 + 4·(e%(COLS/4)), so neighbouring threads read one row segment (eight of them 128 bytes when
// COLS is GS_BK). An operand contiguous along k (stored rows×k) is loaded as R × GS_BK tiles, one
// contiguous along its rows or columns (stored k×cols) as GS_BK × C tiles.
template <int ROWS, int COLS>
__device__ __forceinline__ void gs_load_tile(float4 (&v)[GS_TILE_N(ROWS, COLS)], const float *__restrict__ p, int ld, int rowLimit, int colLimit,
                                             int r0, int c0, bool vec) {
  #pragma unroll
  for (int it = 0; it < GS_TILE_N(ROWS, COLS); ++it) {
    const int e = it * GS_THREADS + threadIdx.x;
    v[it] = e < ROWS * COLS / 4 ? gs_load4(p, ld, rowLimit, colLimit, r0 + e / (COLS / 4), c0 + ((e % (COLS / 4)) << 2), vec)
                                : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
}

// Stores an R × GS_BK tile (gs_load_tile<R, GS_BK>) transposed, k-major as the products read it.
template <int R>
__device__ __forceinline__ void gs_store_kc(GsTile &s, const float4 (&v)[GS_N(R)]) {
  #pragma unroll
  for (int it = 0; it < GS_N(R); ++it) {
    const int e = it * GS_THREADS + threadIdx.x;
    if (e >= R * GS_BK / 4) break;
    const int r = e / (GS_BK / 4), kq = (e % (GS_BK / 4)) << 2;
    s[kq][r] = v[it].x;
    s[kq + 1][r] = v[it].y;
    s[kq + 2][r] = v[it].z;
    s[kq + 3][r] = v[it].w;
  }
}

// Stores a GS_BK × C tile (gs_load_tile<GS_BK, C>) as it is.
template <int C>
__device__ __forceinline__ void gs_store_rc(GsTile &s, const float4 (&v)[GS_N(C)]) {
  #pragma unroll
  for (int it = 0; it < GS_N(C); ++it) {
    const int e = it * GS_THREADS + threadIdx.x;
    if (e >= GS_BK * C / 4) break;
    *reinterpret_cast<float4 *>(&s[e / (C / 4)][(e % (C / 4)) << 2]) = v[it];
  }
}

template <int TM, bool TA>
__device__ __forceinline__ void gs_load_a(float4 (&v)[GS_N(TM)], const float *__restrict__ a, int lda, int m, int k, int i0, int l0, bool vec) {
  if (TA) gs_load_tile<GS_BK, TM>(v, a, lda, k, m, l0, i0, vec); else gs_load_tile<TM, GS_BK>(v, a, lda, m, k, i0, l0, vec);
}

template <int TM, bool TA>
__device__ __forceinline__ void gs_store_a(GsTile &s, const float4 (&v)[GS_N(TM)]) {
  if (TA) gs_store_rc<TM>(s, v); else gs_store_kc<TM>(s, v);
}

template <bool TB>
__device__ __forceinline__ void gs_load_b(float4 (&v)[GS_N(GS_TILE)], const float *__restrict__ b, int ldb, int n, int k, int j0, int l0, bool vec) {
  if (TB) gs_load_tile<GS_TILE, GS_BK>(v, b, ldb, n, k, j0, l0, vec); else gs_load_tile<GS_BK, GS_TILE>(v, b, ldb, k, n, l0, j0, vec);
}

template <bool TB>
__device__ __forceinline__ void gs_store_b(GsTile &s, const float4 (&v)[GS_N(GS_TILE)]) {
  if (TB) gs_store_kc<GS_TILE>(s, v); else gs_store_rc<GS_TILE>(s, v);
}

__device__ __forceinline__ unsigned gs_tf32(float v) {
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
  return r;
}

// d += this k-tile's product for the warp's 16 rows × TM/2 columns (TM/16 n8 tiles), by mma.sync
// m16n8k8 (PTX fragment layouts: g = lane/4, t = lane%4; A (g|g+8, t|t+4), B (t|t+4, g), D (g|g+8, 2t|2t+1)).
template <int TM>
__device__ __forceinline__ void gs_mma_tile(const GsTile &as, const GsTile &bs, float (&d)[TM / 16][4]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int row0 = (warp / (128 / TM)) * 16, col0 = (warp % (128 / TM)) * (TM / 2);
  #pragma unroll
  for (int kk = 0; kk < GS_BK; kk += 8) {
    const unsigned a0 = gs_tf32(as[kk + t][row0 + g]), a1 = gs_tf32(as[kk + t][row0 + g + 8]);
    const unsigned a2 = gs_tf32(as[kk + t + 4][row0 + g]), a3 = gs_tf32(as[kk + t + 4][row0 + g + 8]);
    #pragma unroll
    for (int nt = 0; nt < TM / 16; ++nt) {
      const unsigned b0 = gs_tf32(bs[kk + t][col0 + nt * 8 + g]), b1 = gs_tf32(bs[kk + t + 4][col0 + nt * 8 + g]);
      asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                   : "+f"(d[nt][0]), "+f"(d[nt][1]), "+f"(d[nt][2]), "+f"(d[nt][3])
                   : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    }
  }
}

// The warp's accumulators into the TM×64 tile cs (laid over the A buffers), then this thread's RM×4 micro-tile out of it.
template <int TM>
__device__ __forceinline__ void gs_mma_gather(GsTile *As, const float (&d)[TM / 16][4], float (&acc)[TM / 16][4]) {
  float (*cs)[GS_LD] = reinterpret_cast<float (*)[GS_LD]>(&As[0][0][0]);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int row0 = (warp / (128 / TM)) * 16, col0 = (warp % (128 / TM)) * (TM / 2);
  #pragma unroll
  for (int nt = 0; nt < TM / 16; ++nt) {
    const int c = col0 + nt * 8 + 2 * t;
    cs[row0 + g][c] = d[nt][0];
    cs[row0 + g][c + 1] = d[nt][1];
    cs[row0 + g + 8][c] = d[nt][2];
    cs[row0 + g + 8][c + 1] = d[nt][3];
  }
  __syncthreads();
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  #pragma unroll
  for (int r = 0; r < TM / 16; ++r) {
    #pragma unroll
    for (int q = 0; q < 4; ++q) acc[r][q] = cs[ty * (TM / 16) + r][(tx << 2) + q];
  }
}

// One TM×64 tile of C = alpha·op(A)·op(B) + beta·C; a, b, c already point at this batch entry.
template <int TM, bool TA, bool TB, bool TC>
__device__ __forceinline__ void gs_tile(GsTile *As, GsTile *Bs, const float *__restrict__ a, const float *__restrict__ b, float *__restrict__ c,
                                        int m, int n, int k, int lda, int ldb, int ldc, float alpha, float beta, int causal,
                                        bool vecA, bool vecB, bool vecC) {
  const int tid = threadIdx.x;
  const int tx = tid & 15, ty = tid >> 4;
  constexpr int RM = TM / 16;
  const int i0 = blockIdx.y * TM, j0 = blockIdx.x * GS_TILE;
  const bool lower = causal == 1;
  float acc[RM][4];
  #pragma unroll
  for (int r = 0; r < RM; ++r) {
    #pragma unroll
    for (int q = 0; q < 4; ++q) acc[r][q] = 0.0f;
  }
  // A tile wholly above the diagonal (m = n) is only zeros: no arithmetic.
  const bool zeroTile = lower && j0 >= i0 + TM;
  int kBegin = 0, kEnd = k;
  // Causal promises about A (m = k): rows i0… need no l past i0 + TM − 1, or none before i0
  // (a multiple of GS_BK, so the k-tiles stay aligned).
  if (causal == 2) kEnd = min(k, i0 + TM);
  if (causal == 3) kBegin = i0;
  // alpha = 0 (or k = 0): C = beta·C without reading A or B, so NaN there cannot leak in.
  if (zeroTile || alpha == 0.0f) kEnd = kBegin;
  const int tiles = kEnd > kBegin ? (kEnd - kBegin + GS_BK - 1) / GS_BK : 0;

  if (tiles > 0) {
    // Tensor-core accumulators (RM = TM/16 n8 tiles of 4), unused on the FMA path.
    float d[RM][4];
    #pragma unroll
    for (int r = 0; r < RM; ++r) {
      #pragma unroll
      for (int q = 0; q < 4; ++q) d[r][q] = 0.0f;
    }
    float4 ra[GS_N(TM)], rb[GS_N(GS_TILE)];
    gs_load_a<TM, TA>(ra, a, lda, m, k, i0, kBegin, vecA);
    gs_load_b<TB>(rb, b, ldb, n, k, j0, kBegin, vecB);
    gs_store_a<TM, TA>(As[0], ra);
    gs_store_b<TB>(Bs[0], rb);
    __syncthreads();
    for (int t = 0; t < tiles; ++t) {
      const int cur = t & 1;
      const bool more = t + 1 < tiles;
      // Prefetch the next k-tile into registers while this one is multiplied.
      if (more) {
        const int l0 = kBegin + (t + 1) * GS_BK;
        gs_load_a<TM, TA>(ra, a, lda, m, k, i0, l0, vecA);
        gs_load_b<TB>(rb, b, ldb, n, k, j0, l0, vecB);
      }
      const GsTile &as = As[cur];
      const GsTile &bs = Bs[cur];
      if (TC) gs_mma_tile<TM>(as, bs, d);
      else
      #pragma unroll
      for (int kk = 0; kk < GS_BK; ++kk) {
        float ar[RM];
        if (RM == 4) {
          const float4 av = *reinterpret_cast<const float4 *>(&as[kk][ty * RM]);
          ar[0] = av.x; ar[RM > 1 ? 1 : 0] = av.y; ar[RM > 2 ? 2 : 0] = av.z; ar[RM > 3 ? 3 : 0] = av.w;
        } else if (RM == 2) {
          const float2 av = *reinterpret_cast<const float2 *>(&as[kk][ty * RM]);
          ar[0] = av.x; ar[RM > 1 ? 1 : 0] = av.y;
        } else {
          ar[0] = as[kk][ty];
        }
        const float4 bv = *reinterpret_cast<const float4 *>(&bs[kk][tx << 2]);
        const float br[4] = {bv.x, bv.y, bv.z, bv.w};
        #pragma unroll
        for (int r = 0; r < RM; ++r) {
          #pragma unroll
          for (int q = 0; q < 4; ++q) acc[r][q] = fmaf(ar[r], br[q], acc[r][q]);
        }
      }
      // The other buffer was last read before the previous __syncthreads: safe to overwrite.
      if (more) {
        gs_store_a<TM, TA>(As[cur ^ 1], ra);
        gs_store_b<TB>(Bs[cur ^ 1], rb);
      }
      __syncthreads();
    }
    if (TC) gs_mma_gather<TM>(As, d, acc);
  }

  const int j = j0 + (tx << 2);
  if (j >= n) return;
  #pragma unroll
  for (int r = 0; r < RM; ++r) {
    const int i = i0 + ty * RM + r;
    if (i >= m) break;
    float *row = c + (long long)i * ldc + j;
    float o[4];
    #pragma unroll
    for (int q = 0; q < 4; ++q) o[q] = alpha * acc[r][q];
    if (zeroTile) {
      // Every column here is right of the diagonal.
      #pragma unroll
      for (int q = 0; q < 4; ++q) if (j + q < n) row[q] = 0.0f;
    } else if (vecC && j + 3 < n) {
      // beta = 0 overwrites without reading (C may hold NaN), as BLAS does.
      if (beta != 0.0f) {
        const float4 old = *reinterpret_cast<const float4 *>(row);
        o[0] = fmaf(beta, old.x, o[0]);
        o[1] = fmaf(beta, old.y, o[1]);
        o[2] = fmaf(beta, old.z, o[2]);
        o[3] = fmaf(beta, old.w, o[3]);
      }
      if (lower) {
        #pragma unroll
        for (int q = 0; q < 4; ++q) if (j + q > i) o[q] = 0.0f;
      }
      *reinterpret_cast<float4 *>(row) = make_float4(o[0], o[1], o[2], o[3]);
    } else {
      #pragma unroll
      for (int q = 0; q < 4; ++q) {
        if (j + q < n) {
          float v = o[q];
          if (beta != 0.0f) v = fmaf(beta, row[q], v);
          if (lower && j + q > i) v = 0.0f;
          row[q] = v;
        }
      }
    }
  }
}

template <int TM, bool TC>
__device__ __forceinline__ void gs_dispatch(GsTile *As, GsTile *Bs, const float *__restrict__ a, const float *__restrict__ b, float *__restrict__ c,
                                            int m, int n, int k, int lda, int ldb, int ldc, int transA, int transB, float alpha, float beta, int causal,
                                            bool va, bool vb, bool vc) {
  if (transA) {
    if (transB) gs_tile<TM, true, true, TC>(As, Bs, a, b, c, m, n, k, lda, ldb, ldc, alpha, beta, causal, va, vb, vc);
    else gs_tile<TM, true, false, TC>(As, Bs, a, b, c, m, n, k, lda, ldb, ldc, alpha, beta, causal, va, vb, vc);
  } else {
    if (transB) gs_tile<TM, false, true, TC>(As, Bs, a, b, c, m, n, k, lda, ldb, ldc, alpha, beta, causal, va, vb, vc);
    else gs_tile<TM, false, false, TC>(As, Bs, a, b, c, m, n, k, lda, ldb, ldc, alpha, beta, causal, va, vb, vc);
  }
}

// One product of a launch (gemm-strided-ops.ts packs it; GEMM_STRIDED_PROBLEM_WORDS words).
// causal: 0 none, 1 lower-output, 2 k-to-row, 3 k-from-row. vecX: the host checked X's 16-byte
// alignment (base address, ld, batch strides). tilesX, tilesY: this product's grid of tiles.
struct GsProblem {
  const float *a;
  const float *b;
  float *c;
  long long strideA0, strideA1, strideB0, strideB1, strideC0, strideC1;
  int m, n, k, lda, ldb, ldc;
  int batch1, transA, transB, causal;
  int vecA, vecB, vecC, tileRows;
  float alpha, beta;
  int tilesX, tilesY;
};

// Grid (tiles over n, tiles over m, batch entries of p0 then of p1): two independent products
// in one launch run side by side, which for products too small to fill the GPU costs little more
// than one (p1 is ignored when batches0 covers the whole grid). Batch entry z = p·batch1 + q.
template <bool TC>
__device__ __forceinline__ void gs_launch(GsTile *As, GsTile *Bs, const GsProblem &p0, const GsProblem &p1, int batches0) {
  const bool second = (int)blockIdx.z >= batches0;
  const GsProblem p = second ? p1 : p0;
  if ((int)blockIdx.x >= p.tilesX || (int)blockIdx.y >= p.tilesY) return;
  const int z = second ? (int)blockIdx.z - batches0 : (int)blockIdx.z;
  const long long pb = z / p.batch1, qb = z - pb * p.batch1;
  const float *a = p.a + pb * p.strideA0 + qb * p.strideA1;
  const float *b = p.b + pb * p.strideB0 + qb * p.strideB1;
  float *c = p.c + pb * p.strideC0 + qb * p.strideC1;
  const bool va = p.vecA != 0, vb = p.vecB != 0, vc = p.vecC != 0;
  if (p.tileRows == 64) gs_dispatch<64, TC>(As, Bs, a, b, c, p.m, p.n, p.k, p.lda, p.ldb, p.ldc, p.transA, p.transB, p.alpha, p.beta, p.causal, va, vb, vc);
  else gs_dispatch<32, TC>(As, Bs, a, b, c, p.m, p.n, p.k, p.lda, p.ldb, p.ldc, p.transA, p.transB, p.alpha, p.beta, p.causal, va, vb, vc);
}

// Shared arrays declared in the kernels, not in gs_tile: each template instance would get its own.
extern "C" __global__ void __launch_bounds__(GS_THREADS, 2) gemm_strided(GsProblem p0, GsProblem p1, int batches0) {
  __shared__ __align__(16) GsTile As[2];
  __shared__ __align__(16) GsTile Bs[2];
  gs_launch<false>(As, Bs, p0, p1, batches0);
}

extern "C" __global__ void __launch_bounds__(GS_THREADS, 2) gemm_strided_tc(GsProblem p0, GsProblem p1, int batches0) {
  __shared__ __align__(16) GsTile As[2];
  __shared__ __align__(16) GsTile Bs[2];
  gs_launch<true>(As, Bs, p0, p1, batches0);
}
`;

export const GEMM_STRIDED_MODULE: KernelModuleSource = { name: 'gemm-strided', source: [PRELUDE, SOURCE].join('\n'), options: [] };
