/**
 * Fused scaled dot-product attention in float32 (twins in src/backend/cpu/attention.ts), in the
 * manner of FlashAttention-2: the [S, S] scores never reach memory.
 * - attention_forward: one block per (32-query tile, b·h); it walks the key tiles (only those at
 *   or before the diagonal under the causal mask) with an online softmax.
 * - attention_grad_q: one block per query tile; writes each row's delta = rowsum(dP∘P) and dQ.
 * - attention_grad_kv: one block per 32-key tile, after grad_q (it reads delta); dK and dV.
 * Thread (ty, tx) = (tid / 8, tid % 8) owns RPT rows from RPT·ty of a 32×32 score tile at
 * columns tx + 8j (j < 4), and the same rows of a [32, D] accumulator at columns
 * 4tx + 32g … +3 (g < DP/32), so the eight lanes of a row pass score values to each other by
 * shuffles, never through shared memory. Operands are row tiles [32][DP + 4] in shared memory
 * (DP = D rounded up to 32, zero-padded; the +4 spreads rows over the banks and keeps float4
 * alignment). Sums run in float32 in the kernels' own order, so results match the CPU twin up to
 * that order.
 */
import type { KernelModuleSource } from '../modules.ts';
import { ATTENTION_MAX_HEAD_DIM } from '../../backend.ts';
import { ReproError } from '../../../errors.ts';
import { PRELUDE } from './prelude.ts';

/** Rows of the tiles a block streams through (keys for the forward and grad_q, queries for grad_kv). */
export const ATTENTION_TILE = 32;
/** Threads per block: 16 row groups of 8 lanes. */
export const ATTENTION_THREADS = 128;
/**
 * Rows of its own tile each thread takes (2 or 4): a block owns 16·RPT rows (queries, or keys in
 * grad_kv). More rows per thread read each shared value once for more products; fewer give more
 * blocks. REPRO_ATTENTION_ROWS_PER_THREAD overrides the default (read on first use).
 */
export interface AttentionGeometry {
  readonly rowsPerThread: number;
  /** Rows a block owns. */
  readonly blockRows: number;
}

let geometry: AttentionGeometry | null = null;

export function attentionGeometry(): AttentionGeometry {
  if (!geometry) {
    const setting = process.env.REPRO_ATTENTION_ROWS_PER_THREAD;
    const rows = setting === undefined || setting === '' ? 2 : Number(setting);
    if (rows !== 2 && rows !== 4) throw new ReproError(`REPRO_ATTENTION_ROWS_PER_THREAD must be 2 or 4, got ${setting}`);
    geometry = { rowsPerThread: rows, blockRows: 16 * rows };
  }
  return geometry;
}

/** Padded head sizes compiled (a module each). */
export const ATTENTION_PADDED_DIMS = [32, ATTENTION_MAX_HEAD_DIM] as const;

/** Dynamic shared memory of each kernel: two own tiles (one in the forward) and two streamed ones, [rows][DP + 4] floats each. */
export function attentionSharedBytes(paddedDim: number, kernel: 'forward' | 'grad_q' | 'grad_kv'): number {
  const row = (paddedDim + 4) * 4;
  const own = (kernel === 'forward' ? 1 : 2) * attentionGeometry().blockRows * row;
  return own + 2 * ATTENTION_TILE * row + (kernel === 'grad_kv' ? 2 * ATTENTION_TILE * 4 : 0);
}

/** The [B, H, S, D] operand struct (attention-ops.ts fills it) and the start of one head's rows. */
export const ATTENTION_OPERAND = String.raw`
struct Operand {
  float *base;
  long long sb, sh, ss;
};

__device__ __forceinline__ float *head_base(const Operand &o, int b, int h) { return o.base + b * o.sb + h * o.sh; }
`;

const source = (dp: number) => String.raw`
#define TILE ${ATTENTION_TILE}
#define THREADS ${ATTENTION_THREADS}
#define DP ${dp}
#define LD (DP + 4)
#define NG (DP / 32)
#define RPT ${attentionGeometry().rowsPerThread}
#define TR (16 * RPT)

/** A thread's share of two ROWS-row tiles, fetched from global memory into registers. */
template <int ROWS>
struct Staged {
  float a[ROWS * DP / THREADS];
  float b[ROWS * DP / THREADS];
};

/**
 * Rows [row0, row0 + ROWS) of two [.., D] operands (rows 'stride' apart), zero-padded. All the
 * loads are issued before any is used, and the loops fetch the next tiles before computing on
 * the current ones, so global latency overlaps the arithmetic.
 */
template <int ROWS>
__device__ __forceinline__ void fetch(Staged<ROWS> &st, const float *a, long long strideA, const float *b, long long strideB, int row0, int rows, int D) {
  #pragma unroll
  for (int it = 0; it < ROWS * DP / THREADS; it++) {
    const int i = it * THREADS + threadIdx.x;
    const int r = i / DP, c = i % DP;
    const bool inside = c < D && row0 + r < rows;
    st.a[it] = inside ? __ldg(a + (long long)(row0 + r) * strideA + c) : 0.0f;
    st.b[it] = inside ? __ldg(b + (long long)(row0 + r) * strideB + c) : 0.0f;
  }
}

template <int ROWS>
__device__ __forceinline__ void stage(const Staged<ROWS> &st, float *tileA, float *tileB) {
  #pragma unroll
  for (int it = 0; it < ROWS * DP / THREADS; it++) {
    const int i = it * THREADS + threadIdx.x;
    const int r = i / DP, c = i % DP;
    tileA[r * LD + c] = st.a[it];
    tileB[r * LD + c] = st.b[it];
  }
}

/** s[i][j] = Σ_d A[RPT·ty+i][d]·B[tx+8j][d] over the padded width. */
__device__ __forceinline__ void tile_dot(const float *A, const float *B, int tx, int ty, float s[RPT][4]) {
  #pragma unroll
  for (int i = 0; i < RPT; i++)
    #pragma unroll
    for (int j = 0; j < 4; j++) s[i][j] = 0.0f;
  #pragma unroll 4
  for (int d = 0; d < DP; d += 4) {
    float4 a[RPT];
    #pragma unroll
    for (int i = 0; i < RPT; i++) a[i] = *(const float4 *)&A[(RPT * ty + i) * LD + d];
    #pragma unroll
    for (int j = 0; j < 4; j++) {
      const float4 b = *(const float4 *)&B[(tx + 8 * j) * LD + d];
      #pragma unroll
      for (int i = 0; i < RPT; i++) s[i][j] += a[i].x * b.x + a[i].y * b.y + a[i].z * b.z + a[i].w * b.w;
    }
  }
}

/** acc[i][g] += Σ_c p[RPT·ty+i][c]·M[c][4tx+32g …], p held as in tile_dot (column c by lane tx = c % 8, slot c / 8). */
__device__ __forceinline__ void tile_accumulate(const float p[RPT][4], const float *M, int tx, int lane, float4 acc[RPT][NG]) {
  #pragma unroll
  for (int c = 0; c < TILE; c++) {
    const int from = (lane & ~7) | (c & 7);
    float pc[RPT];
    #pragma unroll
    for (int i = 0; i < RPT; i++) pc[i] = __shfl_sync(0xffffffffu, p[i][c >> 3], from);
    #pragma unroll
    for (int g = 0; g < NG; g++) {
      const float4 m = *(const float4 *)&M[c * LD + 4 * tx + 32 * g];
      #pragma unroll
      for (int i = 0; i < RPT; i++) {
        acc[i][g].x += pc[i] * m.x; acc[i][g].y += pc[i] * m.y; acc[i][g].z += pc[i] * m.z; acc[i][g].w += pc[i] * m.w;
      }
    }
  }
}

__device__ __forceinline__ void zero_acc(float4 acc[RPT][NG]) {
  #pragma unroll
  for (int i = 0; i < RPT; i++)
    #pragma unroll
    for (int g = 0; g < NG; g++) acc[i][g] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
}

/** Σ over the eight lanes of a row. */
__device__ __forceinline__ float row_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 4);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v;
}

__device__ __forceinline__ float row_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 4));
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return v;
}

/** scale·acc into a thread's rows of [row0, row0 + TR) of a [.., D] operand (rows < 'rows'). */
__device__ __forceinline__ void store_rows(float *base, long long stride, int row0, int rows, int D, int tx, int ty, const float4 acc[RPT][NG], const float scale[RPT]) {
  #pragma unroll
  for (int i = 0; i < RPT; i++) {
    const int r = row0 + RPT * ty + i;
    if (r >= rows) continue;
    float *row = base + (long long)r * stride;
    #pragma unroll
    for (int g = 0; g < NG; g++) {
      const int c = 4 * tx + 32 * g;
      const float v[4] = {acc[i][g].x, acc[i][g].y, acc[i][g].z, acc[i][g].w};
      #pragma unroll
      for (int e = 0; e < 4; e++) if (c + e < D) row[c + e] = scale[i] * v[e];
    }
  }
}

${ATTENTION_OPERAND}

extern "C" __global__ void __launch_bounds__(THREADS) attention_forward(
    Operand q, Operand k, Operand v, Operand out, float *lse, int H, int S, int keys, int D, float temperature, float outputScale, int causal) {
  extern __shared__ __align__(16) float smem[];
  float *Qs = smem, *Ks = Qs + TR * LD, *Vs = Ks + TILE * LD;
  const int tid = threadIdx.x, tx = tid & 7, ty = tid >> 3, lane = tid & 31;
  const int b = blockIdx.y / H, h = blockIdx.y - (blockIdx.y / H) * H;
  const int q0 = blockIdx.x * TR;
  const float *qh = head_base(q, b, h), *kh = head_base(k, b, h), *vh = head_base(v, b, h);
  {
    Staged<TR> own;
    fetch<TR>(own, qh, q.ss, qh, q.ss, q0, S, D);
    stage<TR>(own, Qs, Qs);
  }
  Staged<TILE> st;
  float m[RPT], l[RPT];
  #pragma unroll
  for (int i = 0; i < RPT; i++) {
    m[i] = -f32_inf();
    l[i] = 0.0f;
  }
  float4 acc[RPT][NG];
  zero_acc(acc);
  const int end = causal ? min(keys, q0 + TR) : keys;
  fetch<TILE>(st, kh, k.ss, vh, v.ss, 0, keys, D);
  for (int k0 = 0; k0 < end; k0 += TILE) {
    __syncthreads();
    stage<TILE>(st, Ks, Vs);
    __syncthreads();
    if (k0 + TILE < end) fetch<TILE>(st, kh, k.ss, vh, v.ss, k0 + TILE, keys, D);
    float s[RPT][4];
    tile_dot(Qs, Ks, tx, ty, s);
    #pragma unroll
    for (int i = 0; i < RPT; i++) {
      const int query = q0 + RPT * ty + i;
      float mx = -f32_inf();
      #pragma unroll
      for (int j = 0; j < 4; j++) {
        const int key = k0 + tx + 8 * j;
        s[i][j] = (key < keys && (!causal || key <= query)) ? temperature * s[i][j] : -f32_inf();
        mx = fmaxf(mx, s[i][j]);
      }
      const float next = fmaxf(m[i], row_max(mx));
      // Every row sees key 0 in its first tile, so 'next' is finite from then on.
      const float keep = expf(m[i] - next);
      float total = 0.0f;
      #pragma unroll
      for (int j = 0; j < 4; j++) {
        s[i][j] = expf(s[i][j] - next);
        total += s[i][j];
      }
      l[i] = l[i] * keep + row_sum(total);
      m[i] = next;
      #pragma unroll
      for (int g = 0; g < NG; g++) {
        acc[i][g].x *= keep; acc[i][g].y *= keep; acc[i][g].z *= keep; acc[i][g].w *= keep;
      }
    }
    tile_accumulate(s, Vs, tx, lane, acc);
  }
  float scale[RPT];
  #pragma unroll
  for (int i = 0; i < RPT; i++) scale[i] = outputScale / l[i];
  store_rows(head_base(out, b, h), out.ss, q0, S, D, tx, ty, acc, scale);
  if (tx == 0) {
    #pragma unroll
    for (int i = 0; i < RPT; i++) {
      const int query = q0 + RPT * ty + i;
      if (query < S) lse[((long long)blockIdx.y) * S + query] = m[i] + logf(l[i]);
    }
  }
}

extern "C" __global__ void __launch_bounds__(THREADS) attention_grad_q(
    Operand q, Operand k, Operand v, Operand out, Operand gradOut, Operand gradQ, const float *lse, float *delta,
    int H, int S, int keys, int D, float temperature, float outputScale, int causal, float probsGradScale, float logitGradScale) {
  extern __shared__ __align__(16) float smem[];
  float *Qs = smem, *Gs = Qs + TR * LD, *Ks = Gs + TR * LD, *Vs = Ks + TILE * LD;
  const int tid = threadIdx.x, tx = tid & 7, ty = tid >> 3, lane = tid & 31;
  const int b = blockIdx.y / H, h = blockIdx.y - (blockIdx.y / H) * H;
  const int q0 = blockIdx.x * TR;
  const float *kh = head_base(k, b, h), *vh = head_base(v, b, h);
  const float *gh = head_base(gradOut, b, h), *oh = head_base(out, b, h);
  {
    Staged<TR> own;
    fetch<TR>(own, head_base(q, b, h), q.ss, gh, gradOut.ss, q0, S, D);
    stage<TR>(own, Qs, Gs);
  }
  Staged<TILE> st;
  float rowLse[RPT], rowDelta[RPT];
  #pragma unroll
  for (int i = 0; i < RPT; i++) {
    const int query = q0 + RPT * ty + i;
    float part = 0.0f;
    if (query < S)
      for (int d = tx; d < D; d += 8) part += gh[(long long)query * gradOut.ss + d] * oh[(long long)query * out.ss + d];
    const float dot = row_sum(part);
    const long long at = (long long)blockIdx.y * S + query;
    rowDelta[i] = probsGradScale * dot / outputScale;
    rowLse[i] = query < S ? lse[at] : 0.0f;
    if (tx == 0 && query < S) delta[at] = rowDelta[i];
  }
  float4 acc[RPT][NG];
  zero_acc(acc);
  const int end = causal ? min(keys, q0 + TR) : keys;
  fetch<TILE>(st, kh, k.ss, vh, v.ss, 0, keys, D);
  for (int k0 = 0; k0 < end; k0 += TILE) {
    __syncthreads();
    stage<TILE>(st, Ks, Vs);
    __syncthreads();
    if (k0 + TILE < end) fetch<TILE>(st, kh, k.ss, vh, v.ss, k0 + TILE, keys, D);
    float s[RPT][4], dp[RPT][4];
    tile_dot(Qs, Ks, tx, ty, s);
    tile_dot(Gs, Vs, tx, ty, dp);
    #pragma unroll
    for (int i = 0; i < RPT; i++) {
      const int query = q0 + RPT * ty + i;
      #pragma unroll
      for (int j = 0; j < 4; j++) {
        const int key = k0 + tx + 8 * j;
        const bool seen = query < S && key < keys && (!causal || key <= query);
        const float p = seen ? expf(temperature * s[i][j] - rowLse[i]) : 0.0f;
        s[i][j] = p * (probsGradScale * dp[i][j] - rowDelta[i]);
      }
    }
    tile_accumulate(s, Ks, tx, lane, acc);
  }
  float scale[RPT];
  #pragma unroll
  for (int i = 0; i < RPT; i++) scale[i] = logitGradScale;
  store_rows(head_base(gradQ, b, h), gradQ.ss, q0, S, D, tx, ty, acc, scale);
}

extern "C" __global__ void __launch_bounds__(THREADS) attention_grad_kv(
    Operand q, Operand k, Operand v, Operand gradOut, Operand gradK, Operand gradV, const float *lse, const float *delta,
    int H, int S, int keys, int D, float temperature, int causal, float probsGradScale, float logitGradScale, float valueGradScale) {
  extern __shared__ __align__(16) float smem[];
  float *Ks = smem, *Vs = Ks + TR * LD, *Qs = Vs + TR * LD, *Gs = Qs + TILE * LD;
  float *Ls = Gs + TILE * LD, *Ds = Ls + TILE;
  const int tid = threadIdx.x, tx = tid & 7, ty = tid >> 3, lane = tid & 31;
  const int b = blockIdx.y / H, h = blockIdx.y - (blockIdx.y / H) * H;
  const int k0 = blockIdx.x * TR;
  const float *qh = head_base(q, b, h), *gh = head_base(gradOut, b, h);
  {
    Staged<TR> own;
    fetch<TR>(own, head_base(k, b, h), k.ss, head_base(v, b, h), v.ss, k0, keys, D);
    stage<TR>(own, Ks, Vs);
  }
  Staged<TILE> st;
  float4 dk[RPT][NG], dv[RPT][NG];
  zero_acc(dk);
  zero_acc(dv);
  // Under the causal mask, queries before this key tile see none of its keys.
  const int first = causal ? k0 : 0;
  fetch<TILE>(st, qh, q.ss, gh, gradOut.ss, first, S, D);
  for (int q0 = first; q0 < S; q0 += TILE) {
    __syncthreads();
    stage<TILE>(st, Qs, Gs);
    if (tid < TILE) {
      const int query = q0 + tid;
      const long long at = (long long)blockIdx.y * S + query;
      Ls[tid] = query < S ? lse[at] : 0.0f;
      Ds[tid] = query < S ? delta[at] : 0.0f;
    }
    __syncthreads();
    if (q0 + TILE < S) fetch<TILE>(st, qh, q.ss, gh, gradOut.ss, q0 + TILE, S, D);
    float s[RPT][4], dp[RPT][4];
    tile_dot(Ks, Qs, tx, ty, s);
    tile_dot(Vs, Gs, tx, ty, dp);
    #pragma unroll
    for (int i = 0; i < RPT; i++) {
      const int key = k0 + RPT * ty + i;
      #pragma unroll
      for (int j = 0; j < 4; j++) {
        const int c = tx + 8 * j;
        const int query = q0 + c;
        const bool seen = query < S && key < keys && (!causal || key <= query);
        const float p = seen ? expf(temperature * s[i][j] - Ls[c]) : 0.0f;
        s[i][j] = p;
        dp[i][j] = p * (probsGradScale * dp[i][j] - Ds[c]);
      }
    }
    tile_accumulate(s, Gs, tx, lane, dv);
    tile_accumulate(dp, Qs, tx, lane, dk);
  }
  float kScale[RPT], vScale[RPT];
  #pragma unroll
  for (int i = 0; i < RPT; i++) {
    kScale[i] = logitGradScale;
    vScale[i] = valueGradScale;
  }
  store_rows(head_base(gradK, b, h), gradK.ss, k0, keys, D, tx, ty, dk, kScale);
  store_rows(head_base(gradV, b, h), gradV.ss, k0, keys, D, tx, ty, dv, vScale);
}
`;

const modules = new Map<number, KernelModuleSource>();

/** The module for head sizes up to `paddedDim` (a multiple of 32). */
export function attentionModule(paddedDim: (typeof ATTENTION_PADDED_DIMS)[number]): KernelModuleSource {
  let module = modules.get(paddedDim);
  if (!module) {
    module = { name: `attention_d${paddedDim}_r${attentionGeometry().rowsPerThread}`, source: [PRELUDE, source(paddedDim)].join('\n'), options: [] };
    modules.set(paddedDim, module);
  }
  return module;
}
