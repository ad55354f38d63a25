/**
 * Fused attention on tensor cores for 16-bit formats (AttentionShape.format; CPU twins in
 * src/backend/cpu/attention.ts), the way FlashAttention runs under PyTorch's autocast: q, k, v
 * and the output's gradient are read as FP16 or BF16, the probabilities P and the score
 * gradients dS are rounded to the format before they multiply anything, and every product is an
 * mma.sync m16n8k16 with FP32 accumulation. Row statistics (max, sum, log-sum-exp, delta) and
 * the outputs stay FP32. q, k, v and the output's gradient may also be 16-bit storage (read as
 * stored), the gradients of q, k and v may be written in 16 bits, and the forward may write a
 * 16-bit copy of its output (AttentionStorage: a module per combination).
 *
 * - attention_tc_forward: one block per 64 queries and (b, h), a warp per 16 query rows. A first
 *   walk over the key tiles finds each row's log-sum-exp; a second recomputes the scores and
 *   multiplies P = round(exp(s − lse)) by v. Two walks cost a second q·kᵀ but make P exactly the
 *   rounded softmax, so the result does not depend on the tile order (an online softmax would
 *   round probabilities that are later rescaled).
 * - attention_tc_grad_q: per 64 queries; writes delta and dQ.
 * - attention_tc_grad_kv: per 64 keys, after grad_q (it reads delta); dK and dV. No atomics, so
 *   results are deterministic.
 *
 * Fragments (PTX ISA, m16n8k16, g = lane / 4, t = lane % 4): A holds rows g and g + 8 at columns
 * 2t, 2t + 1 and 2t + 8, 2t + 9; B holds column g at rows 2t, 2t + 1 and 2t + 8, 2t + 9; the FP32
 * result holds rows g, g + 8 at columns 2t, 2t + 1. A score tile's result fragments are therefore
 * the A fragments of the next product (P·v, dS·k) once packed to 16 bits: no shared-memory trip.
 * Operands are staged as row tiles [row][dim] of 16-bit values (pairs in 32-bit words), read as
 * fragments directly for products that contract over the head dimension and through ldmatrix
 * .trans for those that contract over rows. Rows are 8 halves longer than the data, which puts
 * the eight g's of a fragment read (and the eight rows of an ldmatrix) in different banks.
 * Global loads: all of a tile's loads are issued before any is used (the forward's first walk
 * also fetches the next key tile while it multiplies the current one).
 */
import type { Format16 } from '../../backend.ts';
import type { AttentionStorage } from '../../attention-rules.ts';
import type { KernelModuleSource } from '../modules.ts';
import { ATTENTION_OPERAND } from './attention.ts';
import { PRELUDE } from './prelude.ts';

/** Rows a block owns, and rows of the tiles it streams (keys, or queries in grad_kv). */
export const ATTENTION_TC_ROWS = 64;
export const ATTENTION_TC_THREADS = 128;

const source = (dp: number, format: Format16, io: AttentionStorage, vec16: boolean) => String.raw`
#define DP ${dp}
#define BR ${ATTENTION_TC_ROWS}
#define THREADS ${ATTENTION_TC_THREADS}
// 32-bit words per row of a row tile ([BR][DP + 8] halves).
#define RW ((DP + 8) / 2)
#define KSTEPS (DP / 16)
#define DTILES (DP / 8)
#define RTILES (BR / 8)
#define FMT "${format === 'bf16' ? 'bf16' : 'f16'}"
// Exponentials run in base 2 (exp2f is one MUFU instruction): scores carry a factor log2(e),
// the stored log-sum-exp stays natural.
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f
#define IS_BF16 ${format === 'bf16' ? 1 : 0}

${ATTENTION_OPERAND}
// Element types of q, k, v; of the output's gradient; of q's, k's and v's gradients (16-bit ones hold the format's codes).
typedef ${io.qkv16 ? 'unsigned short' : 'float'} QKV_T;
typedef ${io.gradOut16 ? 'unsigned short' : 'float'} G_T;
typedef ${io.grads16 ? 'unsigned short' : 'float'} DQKV_T;
#define VEC16 ${vec16 ? 1 : 0}
template <typename T>
__device__ __forceinline__ T *head_of(const Operand &o, int b, int h) { return reinterpret_cast<T *>(o.base) + b * o.sb + h * o.sh; }
// What fetch holds per thread for a tile of float32 (float4s) or 16-bit (four codes in a uint2) values.
template <typename T> struct StageOf { typedef float4 type; };
template <> struct StageOf<unsigned short> { typedef uint2 type; };

// Two values rounded to the format (nearest-even; overflow gives infinity), lo in the low half.
__device__ __forceinline__ u32 pack2(float lo, float hi) {
  u32 r;
#if IS_BF16
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#else
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#endif
  return r;
}

__device__ __forceinline__ float low_value(u32 w) {
#if IS_BF16
  return __uint_as_float(w << 16);
#else
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"((unsigned short)(w & 0xffffu)));
  return f;
#endif
}

// x rounded to the format and back.
__device__ __forceinline__ float rounded(float x) { return low_value(pack2(x, 0.0f)); }

// An operand element as the kernels read it: float32 rounded to the format, 16-bit as stored.
__device__ __forceinline__ float read_value(float v) { return rounded(v); }
__device__ __forceinline__ float read_value(unsigned short h) { return low_value((u32)h); }

// An output element: float32, or rounded to the format.
__device__ __forceinline__ void put(float *p, float v) { *p = v; }
__device__ __forceinline__ void put(unsigned short *p, float v) { *p = (unsigned short)(pack2(v, 0.0f) & 0xffffu); }

__device__ __forceinline__ void mma(float c[4], const u32 a[4], u32 b0, u32 b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." FMT "." FMT ".f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// float4s of a [BR, DP] tile that each thread fetches.
#define STAGE (BR * DP / 4 / THREADS)

// Rows [r0, r0 + BR) of a [rows, D] operand (row stride 'stride'), zero outside, into registers:
// float4 number it·THREADS + tid is row e / (DP / 4), columns 4·(e % (DP / 4)) …, so all of a
// thread's loads are in flight at once. 16-byte loads where every row start is 16-byte aligned.
__device__ __forceinline__ void fetch(float4 (&st)[STAGE], const float *base, long long stride, int r0, int rows, int D) {
  const bool vec = ((reinterpret_cast<unsigned long long>(base) | (unsigned long long)(stride * 4)) & 15ull) == 0 && (D & 3) == 0;
  #pragma unroll
  for (int it = 0; it < STAGE; it++) {
    const int e = it * THREADS + threadIdx.x;
    const int r = e / (DP / 4), c = (e - r * (DP / 4)) * 4, row = r0 + r;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (row < rows && c < D) {
      const float *p = base + (long long)row * stride + c;
      if (vec) {
        v = __ldg(reinterpret_cast<const float4 *>(p));
      } else {
        v.x = __ldg(p);
        if (c + 1 < D) v.y = __ldg(p + 1);
        if (c + 2 < D) v.z = __ldg(p + 2);
        if (c + 3 < D) v.w = __ldg(p + 3);
      }
    }
    st[it] = v;
  }
}

// The same for a 16-bit operand: four codes (8 bytes) where a float32 one has a float4. VEC16
// (a module of its own): every 16-bit row starts 8-byte aligned and D % 4 == 0; the scalar
// loads' registers cost the kernels spills even when unused.
__device__ __forceinline__ void fetch(uint2 (&st)[STAGE], const unsigned short *base, long long stride, int r0, int rows, int D) {
  const bool vec = VEC16;
  #pragma unroll
  for (int it = 0; it < STAGE; it++) {
    const int e = it * THREADS + threadIdx.x;
    const int r = e / (DP / 4), c = (e - r * (DP / 4)) * 4, row = r0 + r;
    uint2 v = make_uint2(0u, 0u);
    if (row < rows && c < D) {
      const unsigned short *p = base + (long long)row * stride + c;
      if (vec) {
        v = __ldg(reinterpret_cast<const uint2 *>(p));
      } else {
        const u32 h0 = __ldg(p), h1 = c + 1 < D ? __ldg(p + 1) : 0u, h2 = c + 2 < D ? __ldg(p + 2) : 0u, h3 = c + 3 < D ? __ldg(p + 3) : 0u;
        v = make_uint2(h0 | (h1 << 16), h2 | (h3 << 16));
      }
    }
    st[it] = v;
  }
}

// The fetched rows, rounded to the format (16-bit ones as they are), into a row tile.
__device__ __forceinline__ void stage(u32 *tile, const float4 (&st)[STAGE]) {
  #pragma unroll
  for (int it = 0; it < STAGE; it++) {
    const int e = it * THREADS + threadIdx.x;
    const int r = e / (DP / 4), c = (e - r * (DP / 4)) * 4;
    *reinterpret_cast<uint2 *>(&tile[r * RW + (c >> 1)]) = make_uint2(pack2(st[it].x, st[it].y), pack2(st[it].z, st[it].w));
  }
}
__device__ __forceinline__ void stage(u32 *tile, const uint2 (&st)[STAGE]) {
  #pragma unroll
  for (int it = 0; it < STAGE; it++) {
    const int e = it * THREADS + threadIdx.x;
    const int r = e / (DP / 4), c = (e - r * (DP / 4)) * 4;
    *reinterpret_cast<uint2 *>(&tile[r * RW + (c >> 1)]) = st[it];
  }
}

// Two operands' rows into two row tiles, every load issued before the first store. The caller
// brackets it with __syncthreads.
template <typename TA, typename TB>
__device__ __forceinline__ void load_two(u32 *tileA, const TA *a, long long strideA, int rowsA, u32 *tileB, const TB *b, long long strideB, int rowsB, int r0, int D) {
  typename StageOf<TA>::type sa[STAGE];
  typename StageOf<TB>::type sb[STAGE];
  fetch(sa, a, strideA, r0, rowsA, D);
  fetch(sb, b, strideB, r0, rowsB, D);
  stage(tileA, sa);
  stage(tileB, sb);
}

__device__ __forceinline__ u32 shared_address(const void *p) {
  u32 a;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
  return a;
}

// A fragments of a warp's 16 rows (from row0) of a row tile, over the whole head dimension.
__device__ __forceinline__ void row_fragments(u32 a[KSTEPS][4], const u32 *tile, int row0) {
  const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
  #pragma unroll
  for (int kk = 0; kk < KSTEPS; kk++) {
    a[kk][0] = tile[(row0 + g) * RW + kk * 8 + t];
    a[kk][1] = tile[(row0 + g + 8) * RW + kk * 8 + t];
    a[kk][2] = tile[(row0 + g) * RW + kk * 8 + 4 + t];
    a[kk][3] = tile[(row0 + g + 8) * RW + kk * 8 + 4 + t];
  }
}

// s = A·Rᵀ: the warp's 16 rows (A fragments) against the BR rows of a row tile.
__device__ __forceinline__ void dot_rows(float s[RTILES][4], const u32 a[KSTEPS][4], const u32 *tile) {
  const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
  #pragma unroll
  for (int n = 0; n < RTILES; n++) {
    s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
    #pragma unroll
    for (int kk = 0; kk < KSTEPS; kk++) mma(s[n], a[kk], tile[(n * 8 + g) * RW + kk * 8 + t], tile[(n * 8 + g) * RW + kk * 8 + 4 + t]);
  }
}

// acc += P·R: a [16, BR] tile held as result fragments (packed to 16 bits here) times the BR
// rows of a row tile. ldmatrix .trans hands each lane the pair (rows 2t, 2t + 1; column g) of an
// 8×8 block, the B fragment of a product that contracts over rows, straight from [row][dim].
__device__ __forceinline__ void accumulate_rows(float acc[DTILES][4], const float p[RTILES][4], const u32 *tile) {
  const int lane = threadIdx.x & 31;
  // This lane's row address: matrix lane / 8 (rows +8 for odd ones, columns +8 for the upper two).
  const unsigned short *halves = reinterpret_cast<const unsigned short *>(tile);
  const u32 base = shared_address(halves + ((lane & 8) + (lane & 7)) * (2 * RW) + ((lane >> 4) << 3));
  #pragma unroll
  for (int kk = 0; kk < BR / 16; kk++) {
    const u32 a[4] = {pack2(p[2 * kk][0], p[2 * kk][1]), pack2(p[2 * kk][2], p[2 * kk][3]),
                      pack2(p[2 * kk + 1][0], p[2 * kk + 1][1]), pack2(p[2 * kk + 1][2], p[2 * kk + 1][3])};
    #pragma unroll
    for (int n = 0; n < DTILES; n += 2) {
      u32 b0, b1, b2, b3;
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                   : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3)
                   : "r"(base + (u32)((kk * 16 * 2 * RW + n * 8) * 2)));
      mma(acc[n], a, b0, b1);
      mma(acc[n + 1], a, b2, b3);
    }
  }
}

__device__ __forceinline__ void zero(float acc[DTILES][4]) {
  #pragma unroll
  for (int n = 0; n < DTILES; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
}

// Reductions over the four lanes (t) that share a fragment row.
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

// scale·acc into rows r (fragment rows g, g + 8 from row0) of a [rows, D] operand (float32, or rounded to 16 bits).
template <typename T>
__device__ __forceinline__ void store_fragments(T *base, long long stride, int row0, int rows, int D, const float acc[DTILES][4], float scale) {
  const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
  #pragma unroll
  for (int half = 0; half < 2; half++) {
    const int row = row0 + g + 8 * half;
    if (row >= rows) continue;
    T *p = base + (long long)row * stride;
    #pragma unroll
    for (int n = 0; n < DTILES; n++) {
      const int c = n * 8 + 2 * t;
      if (c < D) put(p + c, scale * acc[n][2 * half]);
      if (c + 1 < D) put(p + c + 1, scale * acc[n][2 * half + 1]);
    }
  }
}

// Where a thread works: its warp, its fragment row g and column pair t (see the header), and the
// (batch, head) of its block.
struct ThreadPlace {
  int warp, g, t, b, h;
};
__device__ __forceinline__ ThreadPlace thread_place(int H) {
  ThreadPlace p;
  p.warp = threadIdx.x >> 5;
  p.g = (threadIdx.x & 31) >> 2;
  p.t = threadIdx.x & 3;
  p.b = blockIdx.y / H;
  p.h = blockIdx.y - p.b * H;
  return p;
}

// The masks of a score tile. Row-major tiles (forward, grad_q): rows are the warp's queries
// rows[0], rows[1], columns the keys from k0. A key is seen by a query when it exists and, under
// the causal mask, does not follow it. MASKED false: the caller checked that every key of the tile
// is seen by every row of the warp (most tiles), and the index arithmetic goes.
template <bool MASKED>
__device__ __forceinline__ bool seen(int key, int keys, int query, int causal) {
  return !MASKED || (key < keys && (!causal || key <= query));
}

// f(score, seen, half) for every element of a row-major score tile (half: which of the rows).
template <bool MASKED, typename F>
__device__ __forceinline__ void each_row_score(float s[RTILES][4], int k0, int keys, const int rows[2], int causal, F f) {
  const int t = threadIdx.x & 3;
  #pragma unroll
  for (int n = 0; n < RTILES; n++)
    #pragma unroll
    for (int e = 0; e < 4; e++) {
      const int key = k0 + n * 8 + 2 * t + (e & 1), half = e >> 1;
      f(s[n][e], seen<MASKED>(key, keys, rows[half], causal), half);
    }
}

// scale2·s, −∞ where masked, and each row's running maximum.
template <bool MASKED>
__device__ __forceinline__ void scaled_scores(float s[RTILES][4], float tileMax[2], float scale2, int k0, int keys, const int rows[2], int causal) {
  each_row_score<MASKED>(s, k0, keys, rows, causal, [&](float &v, bool ok, int half) {
    v = ok ? scale2 * v : -f32_inf();
    tileMax[half] = fmaxf(tileMax[half], v);
  });
}

// P = exp(s − lse) of a row-major tile (base 2: s carries log2(e) through scale2, lse too), 0 where masked.
template <bool MASKED>
__device__ __forceinline__ void row_probabilities(float s[RTILES][4], float scale2, const float rowLse[2], int k0, int keys, const int rows[2], int causal) {
  each_row_score<MASKED>(s, k0, keys, rows, causal, [&](float &v, bool ok, int half) { v = ok ? exp2f(scale2 * v - rowLse[half]) : 0.0f; });
}

// The same for grad_kv's transposed tiles: rows are the warp's keys, columns the queries from q0
// with their log-sum-exps in Ls; queries past S are masked too (they are not rows anyone drops).
template <bool MASKED>
__device__ __forceinline__ void column_probabilities(float s[RTILES][4], float scale2, const float *Ls, int q0, int S, int keys, const int rows[2], int causal) {
  const int t = threadIdx.x & 3;
  #pragma unroll
  for (int n = 0; n < RTILES; n++)
    #pragma unroll
    for (int e = 0; e < 4; e++) {
      const int c = n * 8 + 2 * t + (e & 1), query = q0 + c, key = rows[e >> 1];
      s[n][e] = !MASKED || (query < S && seen<true>(key, keys, query, causal)) ? exp2f(scale2 * s[n][e] - Ls[c]) : 0.0f;
    }
}

// Whether every key of the tile from k0 is seen by every query of the warp's rows from row0.
__device__ __forceinline__ bool tile_unmasked(int k0, int keys, int row0, int causal) {
  return k0 + BR <= keys && (!causal || k0 + BR - 1 <= row0);
}

// Three blocks a multiprocessor (at most 168 registers a thread, a few spilled): the large
// reference step's attention went from 0.256 to 0.247 ms a layer (H200, bench/attention.ts).
// The gradient kernels need more registers; capped alike they spill more.
extern "C" __global__ void __launch_bounds__(THREADS, 3) attention_tc_forward(
    Operand q, Operand k, Operand v, Operand out, Operand out16, float *lse, int H, int S, int keys, int D, float temperature, float outputScale, int causal) {
  __shared__ __align__(16) u32 Ks[BR * RW];
  __shared__ __align__(16) u32 Vs[BR * RW];
  const auto [warp, g, t, b, h] = thread_place(H);
  const float scale2 = temperature * LOG2E;
  const int q0 = blockIdx.x * BR;
  const QKV_T *kh = head_of<const QKV_T>(k, b, h), *vh = head_of<const QKV_T>(v, b, h);
  u32 qa[KSTEPS][4];
  {
    // The block's q rows pass through Ks on their way to registers.
    typename StageOf<QKV_T>::type st[STAGE];
    fetch(st, head_of<const QKV_T>(q, b, h), q.ss, q0, S, D);
    stage(Ks, st);
    __syncthreads();
    row_fragments(qa, Ks, warp * 16);
  }
  const int rows[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  const int end = causal ? min(keys, q0 + BR) : keys;
  // Walk 1: each row's max and sum; every row sees key 0 in the first tile, so m is finite after it.
  float m[2] = {-f32_inf(), -f32_inf()}, l[2] = {0.0f, 0.0f};
  {
    typename StageOf<QKV_T>::type st[STAGE];
    fetch(st, kh, k.ss, 0, keys, D);
    for (int k0 = 0; k0 < end; k0 += BR) {
      __syncthreads();
      stage(Ks, st);
      __syncthreads();
      if (k0 + BR < end) fetch(st, kh, k.ss, k0 + BR, keys, D);
      float s[RTILES][4];
      dot_rows(s, qa, Ks);
      float tileMax[2] = {-f32_inf(), -f32_inf()};
      if (tile_unmasked(k0, keys, q0 + warp * 16, causal)) scaled_scores<false>(s, tileMax, scale2, k0, keys, rows, causal);
      else scaled_scores<true>(s, tileMax, scale2, k0, keys, rows, causal);
      #pragma unroll
      for (int half = 0; half < 2; half++) {
        const float next = fmaxf(m[half], quad_max(tileMax[half]));
        float sum = 0.0f;
        #pragma unroll
        for (int n = 0; n < RTILES; n++) sum += exp2f(s[n][2 * half] - next) + exp2f(s[n][2 * half + 1] - next);
        l[half] = l[half] * exp2f(m[half] - next) + sum;
        m[half] = next;
      }
    }
  }
  float rowLse[2];
  #pragma unroll
  for (int half = 0; half < 2; half++) rowLse[half] = m[half] + log2f(quad_sum(l[half]));
  // Walk 2: P = round(exp(s − lse)), out += P·v.
  float acc[DTILES][4];
  zero(acc);
  for (int k0 = 0; k0 < end; k0 += BR) {
    __syncthreads();
    load_two(Ks, kh, k.ss, keys, Vs, vh, v.ss, keys, k0, D);
    __syncthreads();
    float s[RTILES][4];
    dot_rows(s, qa, Ks);
    if (tile_unmasked(k0, keys, q0 + warp * 16, causal)) row_probabilities<false>(s, scale2, rowLse, k0, keys, rows, causal);
    else row_probabilities<true>(s, scale2, rowLse, k0, keys, rows, causal);
    accumulate_rows(acc, s, Vs);
  }
  store_fragments(head_of<float>(out, b, h), out.ss, q0 + warp * 16, S, D, acc, outputScale);
  if (out16.base) store_fragments(head_of<unsigned short>(out16, b, h), out16.ss, q0 + warp * 16, S, D, acc, outputScale);
  if (t == 0) {
    #pragma unroll
    for (int half = 0; half < 2; half++)
      if (rows[half] < S) lse[(long long)blockIdx.y * S + rows[half]] = rowLse[half] * LN2;
  }
}

extern "C" __global__ void __launch_bounds__(THREADS) attention_tc_grad_q(
    Operand q, Operand k, Operand v, Operand out, Operand gradOut, Operand gradQ, const float *lse, float *delta,
    int H, int S, int keys, int D, float temperature, float outputScale, int causal, float probsGradScale, float logitGradScale) {
  __shared__ __align__(16) u32 Ks[BR * RW];
  __shared__ __align__(16) u32 Vs[BR * RW];
  const auto [warp, g, t, b, h] = thread_place(H);
  const float scale2 = temperature * LOG2E;
  const int q0 = blockIdx.x * BR;
  const QKV_T *kh = head_of<const QKV_T>(k, b, h), *vh = head_of<const QKV_T>(v, b, h);
  const G_T *gh = head_of<const G_T>(gradOut, b, h);
  const float *oh = head_of<const float>(out, b, h);
  // The block's q and g rows pass through Ks and Vs on their way to registers.
  load_two(Ks, head_of<const QKV_T>(q, b, h), q.ss, S, Vs, gh, gradOut.ss, S, q0, D);
  __syncthreads();
  u32 qa[KSTEPS][4], ga[KSTEPS][4];
  row_fragments(qa, Ks, warp * 16);
  row_fragments(ga, Vs, warp * 16);
  const int rows[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  float rowLse[2], rowDelta[2];
  #pragma unroll
  for (int half = 0; half < 2; half++) {
    const int row = rows[half];
    float part = 0.0f;
    if (row < S)
      for (int d = t; d < D; d += 4) part += read_value(gh[(long long)row * gradOut.ss + d]) * oh[(long long)row * out.ss + d];
    const long long at = (long long)blockIdx.y * S + row;
    rowDelta[half] = probsGradScale * quad_sum(part) / outputScale;
    rowLse[half] = row < S ? lse[at] * LOG2E : 0.0f;
    if (t == 0 && row < S) delta[at] = rowDelta[half];
  }
  float acc[DTILES][4];
  zero(acc);
  const int end = causal ? min(keys, q0 + BR) : keys;
  for (int k0 = 0; k0 < end; k0 += BR) {
    __syncthreads();
    load_two(Ks, kh, k.ss, keys, Vs, vh, v.ss, keys, k0, D);
    __syncthreads();
    float s[RTILES][4], dp[RTILES][4];
    dot_rows(s, qa, Ks);
    dot_rows(dp, ga, Vs);
    // Rows past S are zero and never stored, so only keys need masking.
    if (tile_unmasked(k0, keys, q0 + warp * 16, causal)) row_probabilities<false>(s, scale2, rowLse, k0, keys, rows, causal);
    else row_probabilities<true>(s, scale2, rowLse, k0, keys, rows, causal);
    #pragma unroll
    for (int n = 0; n < RTILES; n++)
      #pragma unroll
      for (int e = 0; e < 4; e++) s[n][e] = logitGradScale * s[n][e] * (probsGradScale * dp[n][e] - rowDelta[e >> 1]);
    accumulate_rows(acc, s, Ks);
  }
  store_fragments(head_of<DQKV_T>(gradQ, b, h), gradQ.ss, q0 + warp * 16, S, D, acc, 1.0f);
}

extern "C" __global__ void __launch_bounds__(THREADS) attention_tc_grad_kv(
    Operand q, Operand k, Operand v, Operand gradOut, Operand gradK, Operand gradV, const float *lse, const float *delta,
    int H, int S, int keys, int D, float temperature, int causal, float probsGradScale, float logitGradScale, float valueGradScale) {
  __shared__ __align__(16) u32 Qs[BR * RW];
  __shared__ __align__(16) u32 Gs[BR * RW];
  __shared__ float Ls[BR], Ds[BR];
  const auto [warp, g, t, b, h] = thread_place(H);
  const float scale2 = temperature * LOG2E;
  const int k0 = blockIdx.x * BR;
  const QKV_T *qh = head_of<const QKV_T>(q, b, h);
  const G_T *gh = head_of<const G_T>(gradOut, b, h);
  // The block's k and v rows pass through Qs and Gs on their way to registers.
  load_two(Qs, head_of<const QKV_T>(k, b, h), k.ss, keys, Gs, head_of<const QKV_T>(v, b, h), v.ss, keys, k0, D);
  __syncthreads();
  u32 ka[KSTEPS][4], va[KSTEPS][4];
  row_fragments(ka, Qs, warp * 16);
  row_fragments(va, Gs, warp * 16);
  const int rows[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};
  float dk[DTILES][4], dv[DTILES][4];
  zero(dk);
  zero(dv);
  // Under the causal mask, queries before this key tile see none of its keys.
  for (int q0 = causal ? k0 : 0; q0 < S; q0 += BR) {
    __syncthreads();
    load_two(Qs, qh, q.ss, S, Gs, gh, gradOut.ss, S, q0, D);
    if (threadIdx.x < BR) {
      const int query = q0 + threadIdx.x;
      const long long at = (long long)blockIdx.y * S + query;
      Ls[threadIdx.x] = query < S ? lse[at] * LOG2E : 0.0f;
      Ds[threadIdx.x] = query < S ? delta[at] : 0.0f;
    }
    __syncthreads();
    float s[RTILES][4], dp[RTILES][4];
    dot_rows(s, ka, Qs);
    dot_rows(dp, va, Gs);
    // Every query of the tile exists and follows every key of the warp (rows past keys are never stored).
    if (q0 + BR <= S && (!causal || k0 + warp * 16 + 15 <= q0)) column_probabilities<false>(s, scale2, Ls, q0, S, keys, rows, causal);
    else column_probabilities<true>(s, scale2, Ls, q0, S, keys, rows, causal);
    #pragma unroll
    for (int n = 0; n < RTILES; n++)
      #pragma unroll
      for (int e = 0; e < 4; e++) dp[n][e] = logitGradScale * s[n][e] * (probsGradScale * dp[n][e] - Ds[n * 8 + 2 * t + (e & 1)]);
    accumulate_rows(dv, s, Gs);
    accumulate_rows(dk, dp, Qs);
  }
  store_fragments(head_of<DQKV_T>(gradK, b, h), gradK.ss, k0 + warp * 16, keys, D, dk, 1.0f);
  store_fragments(head_of<DQKV_T>(gradV, b, h), gradV.ss, k0 + warp * 16, keys, D, dv, valueGradScale);
}
`;

const modules = new Map<string, KernelModuleSource>();

/** Padded head size for `headDim`: the next multiple of 16 (the mma's k). */
export function attentionTcPaddedDim(headDim: number): number {
  return Math.ceil(headDim / 16) * 16;
}

/**
 * The module for one format, padded head size (a multiple of 16, at most 64) and set of 16-bit
 * operands; vec16: the 16-bit ones are read 8 bytes at a time (see fetch), else one code at a time.
 */
export function attentionTcModule(paddedDim: number, format: Format16, io: AttentionStorage, vec16 = true): KernelModuleSource {
  const stored = [io.qkv16 ? 'qkv16' : '', io.gradOut16 ? 'g16' : '', io.grads16 ? 'dqkv16' : '', vec16 ? '' : 'scalar16'].filter((x) => x).join('_');
  const name = `attention_tc_${format}_d${paddedDim}${stored ? `_${stored}` : ''}`;
  let module = modules.get(name);
  if (!module) {
    module = { name, source: [PRELUDE, source(paddedDim, format, io, vec16)].join('\n'), options: [] };
    modules.set(name, module);
  }
  return module;
}
