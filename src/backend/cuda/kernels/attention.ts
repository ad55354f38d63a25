/**
 * Fused scaled dot-product attention in float32 (twins in src/backend/cpu/attention.ts), in the
 * manner of FlashAttention-2: the [S, S] scores never reach memory.
 * - attention_forward: one block per (32-query tile, b·h); it walks the key tiles (only those at
 *   or before the diagonal under the causal mask) with an online softmax.
 * - attention_grad_q: one block per query tile; writes each row's delta = rowsum(dP∘P) and dQ.
 * - attention_grad_kv: one block per 32-key tile, after grad_q (it reads delta); dK and dV.
 * 128 threads; thread (ty, tx) = (tid / 8, tid % 8) owns rows 2ty and 2ty+1 of a 32×32 score tile
 * at columns tx + 8j (j < 4), and the same two rows of a [32, D] accumulator at columns
 * 4tx + 32g … +3 (g < DP/32), so the eight lanes of a row pass score values to each other by
 * shuffles, never through shared memory. Operands are row tiles [32][DP + 4] in shared memory
 * (DP = D rounded up to 32, zero-padded; the +4 spreads rows over the banks and keeps float4
 * alignment). Sums run in float32 in the kernels' own order, so results match the CPU twin up to
 * that order.
 */
import type { KernelModuleSource } from '../modules.ts';
import { PRELUDE } from './prelude.ts';

export const ATTENTION_TILE = 32;
export const ATTENTION_THREADS = 128;
/** Padded head sizes compiled (a module each). */
export const ATTENTION_PADDED_DIMS = [32, 64] as const;

const source = (dp: number) => String.raw`
#define TILE ${ATTENTION_TILE}
#define DP ${dp}
#define LD (DP + 4)
#define NG (DP / 32)

/** Rows [row0, row0 + TILE) of a [.., D] operand (rows at 'stride' apart) into a zero-padded tile. */
__device__ __forceinline__ void load_tile(float *tile, const float *base, long long stride, int row0, int rows, int D) {
  for (int i = threadIdx.x; i < TILE * DP; i += blockDim.x) {
    const int r = i / DP, c = i - r * DP;
    tile[r * LD + c] = (c < D && row0 + r < rows) ? base[(long long)(row0 + r) * stride + c] : 0.0f;
  }
}

/** s[i][j] = Σ_d A[2ty+i][d]·B[tx+8j][d] over the padded width. */
__device__ __forceinline__ void tile_dot(const float *A, const float *B, int tx, int ty, float s[2][4]) {
  #pragma unroll
  for (int i = 0; i < 2; i++)
    #pragma unroll
    for (int j = 0; j < 4; j++) s[i][j] = 0.0f;
  #pragma unroll 4
  for (int d = 0; d < DP; d += 4) {
    const float4 a0 = *(const float4 *)&A[(2 * ty) * LD + d];
    const float4 a1 = *(const float4 *)&A[(2 * ty + 1) * LD + d];
    #pragma unroll
    for (int j = 0; j < 4; j++) {
      const float4 b = *(const float4 *)&B[(tx + 8 * j) * LD + d];
      s[0][j] += a0.x * b.x + a0.y * b.y + a0.z * b.z + a0.w * b.w;
      s[1][j] += a1.x * b.x + a1.y * b.y + a1.z * b.z + a1.w * b.w;
    }
  }
}

/** acc[i][g] += Σ_c p[2ty+i][c]·M[c][4tx+32g …], p held as in tile_dot (column c by lane tx = c % 8, slot c / 8). */
__device__ __forceinline__ void tile_accumulate(const float p[2][4], const float *M, int tx, int lane, float4 acc[2][NG]) {
  #pragma unroll
  for (int c = 0; c < TILE; c++) {
    const int from = (lane & ~7) | (c & 7);
    const float p0 = __shfl_sync(0xffffffffu, p[0][c >> 3], from);
    const float p1 = __shfl_sync(0xffffffffu, p[1][c >> 3], from);
    #pragma unroll
    for (int g = 0; g < NG; g++) {
      const float4 m = *(const float4 *)&M[c * LD + 4 * tx + 32 * g];
      acc[0][g].x += p0 * m.x; acc[0][g].y += p0 * m.y; acc[0][g].z += p0 * m.z; acc[0][g].w += p0 * m.w;
      acc[1][g].x += p1 * m.x; acc[1][g].y += p1 * m.y; acc[1][g].z += p1 * m.z; acc[1][g].w += p1 * m.w;
    }
  }
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

/** scale·acc into rows [row0, row0 + TILE) of a [.., D] operand (rows < 'rows'). */
__device__ __forceinline__ void store_rows(float *base, long long stride, int row0, int rows, int D, int tx, int ty, const float4 acc[2][NG], const float scale[2]) {
  #pragma unroll
  for (int i = 0; i < 2; i++) {
    const int r = row0 + 2 * ty + i;
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

struct Operand {
  float *base;
  long long sb, sh, ss;
};

__device__ __forceinline__ float *head_base(const Operand &o, int b, int h) { return o.base + b * o.sb + h * o.sh; }

extern "C" __global__ void __launch_bounds__(128) attention_forward(
    Operand q, Operand k, Operand v, Operand out, float *lse, int H, int S, int keys, int D, float temperature, float outputScale, int causal) {
  __shared__ __align__(16) float Qs[TILE * LD];
  __shared__ __align__(16) float Ks[TILE * LD];
  __shared__ __align__(16) float Vs[TILE * LD];
  const int tid = threadIdx.x, tx = tid & 7, ty = tid >> 3, lane = tid & 31;
  const int b = blockIdx.y / H, h = blockIdx.y - (blockIdx.y / H) * H;
  const int q0 = blockIdx.x * TILE;
  const float *qh = head_base(q, b, h), *kh = head_base(k, b, h), *vh = head_base(v, b, h);
  load_tile(Qs, qh, q.ss, q0, S, D);
  float m[2] = {-f32_inf(), -f32_inf()}, l[2] = {0.0f, 0.0f};
  float4 acc[2][NG];
  #pragma unroll
  for (int i = 0; i < 2; i++)
    #pragma unroll
    for (int g = 0; g < NG; g++) acc[i][g] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  const int end = causal ? min(keys, q0 + TILE) : keys;
  for (int k0 = 0; k0 < end; k0 += TILE) {
    __syncthreads();
    load_tile(Ks, kh, k.ss, k0, keys, D);
    load_tile(Vs, vh, v.ss, k0, keys, D);
    __syncthreads();
    float s[2][4];
    tile_dot(Qs, Ks, tx, ty, s);
    #pragma unroll
    for (int i = 0; i < 2; i++) {
      const int query = q0 + 2 * ty + i;
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
  const float scale[2] = {outputScale / l[0], outputScale / l[1]};
  store_rows(head_base(out, b, h), out.ss, q0, S, D, tx, ty, acc, scale);
  if (tx == 0) {
    #pragma unroll
    for (int i = 0; i < 2; i++) {
      const int query = q0 + 2 * ty + i;
      if (query < S) lse[((long long)blockIdx.y) * S + query] = m[i] + logf(l[i]);
    }
  }
}

extern "C" __global__ void __launch_bounds__(128) attention_grad_q(
    Operand q, Operand k, Operand v, Operand out, Operand gradOut, Operand gradQ, const float *lse, float *delta,
    int H, int S, int keys, int D, float temperature, float outputScale, int causal, float probsGradScale, float logitGradScale) {
  __shared__ __align__(16) float Qs[TILE * LD];
  __shared__ __align__(16) float Gs[TILE * LD];
  __shared__ __align__(16) float Ks[TILE * LD];
  __shared__ __align__(16) float Vs[TILE * LD];
  const int tid = threadIdx.x, tx = tid & 7, ty = tid >> 3, lane = tid & 31;
  const int b = blockIdx.y / H, h = blockIdx.y - (blockIdx.y / H) * H;
  const int q0 = blockIdx.x * TILE;
  const float *kh = head_base(k, b, h), *vh = head_base(v, b, h);
  const float *gh = head_base(gradOut, b, h), *oh = head_base(out, b, h);
  load_tile(Qs, head_base(q, b, h), q.ss, q0, S, D);
  load_tile(Gs, gh, gradOut.ss, q0, S, D);
  float rowLse[2], rowDelta[2];
  #pragma unroll
  for (int i = 0; i < 2; i++) {
    const int query = q0 + 2 * ty + i;
    float part = 0.0f;
    if (query < S)
      for (int d = tx; d < D; d += 8) part += gh[(long long)query * gradOut.ss + d] * oh[(long long)query * out.ss + d];
    const float dot = row_sum(part);
    const long long at = (long long)blockIdx.y * S + query;
    rowDelta[i] = probsGradScale * dot / outputScale;
    rowLse[i] = query < S ? lse[at] : 0.0f;
    if (tx == 0 && query < S) delta[at] = rowDelta[i];
  }
  float4 acc[2][NG];
  #pragma unroll
  for (int i = 0; i < 2; i++)
    #pragma unroll
    for (int g = 0; g < NG; g++) acc[i][g] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  const int end = causal ? min(keys, q0 + TILE) : keys;
  for (int k0 = 0; k0 < end; k0 += TILE) {
    __syncthreads();
    load_tile(Ks, kh, k.ss, k0, keys, D);
    load_tile(Vs, vh, v.ss, k0, keys, D);
    __syncthreads();
    float s[2][4], dp[2][4];
    tile_dot(Qs, Ks, tx, ty, s);
    tile_dot(Gs, Vs, tx, ty, dp);
    #pragma unroll
    for (int i = 0; i < 2; i++) {
      const int query = q0 + 2 * ty + i;
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
  const float scale[2] = {logitGradScale, logitGradScale};
  store_rows(head_base(gradQ, b, h), gradQ.ss, q0, S, D, tx, ty, acc, scale);
}

extern "C" __global__ void __launch_bounds__(128) attention_grad_kv(
    Operand q, Operand k, Operand v, Operand gradOut, Operand gradK, Operand gradV, const float *lse, const float *delta,
    int H, int S, int keys, int D, float temperature, int causal, float probsGradScale, float logitGradScale, float valueGradScale) {
  __shared__ __align__(16) float Ks[TILE * LD];
  __shared__ __align__(16) float Vs[TILE * LD];
  __shared__ __align__(16) float Qs[TILE * LD];
  __shared__ __align__(16) float Gs[TILE * LD];
  __shared__ float Ls[TILE], Ds[TILE];
  const int tid = threadIdx.x, tx = tid & 7, ty = tid >> 3, lane = tid & 31;
  const int b = blockIdx.y / H, h = blockIdx.y - (blockIdx.y / H) * H;
  const int k0 = blockIdx.x * TILE;
  const float *qh = head_base(q, b, h), *gh = head_base(gradOut, b, h);
  load_tile(Ks, head_base(k, b, h), k.ss, k0, keys, D);
  load_tile(Vs, head_base(v, b, h), v.ss, k0, keys, D);
  float4 dk[2][NG], dv[2][NG];
  #pragma unroll
  for (int i = 0; i < 2; i++)
    #pragma unroll
    for (int g = 0; g < NG; g++) {
      dk[i][g] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      dv[i][g] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
  // Under the causal mask, queries before this key tile see none of its keys.
  for (int q0 = causal ? k0 : 0; q0 < S; q0 += TILE) {
    __syncthreads();
    load_tile(Qs, qh, q.ss, q0, S, D);
    load_tile(Gs, gh, gradOut.ss, q0, S, D);
    if (tid < TILE) {
      const int query = q0 + tid;
      const long long at = (long long)blockIdx.y * S + query;
      Ls[tid] = query < S ? lse[at] : 0.0f;
      Ds[tid] = query < S ? delta[at] : 0.0f;
    }
    __syncthreads();
    float s[2][4], dp[2][4];
    tile_dot(Ks, Qs, tx, ty, s);
    tile_dot(Vs, Gs, tx, ty, dp);
    #pragma unroll
    for (int i = 0; i < 2; i++) {
      const int key = k0 + 2 * ty + i;
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
  const float kScale[2] = {logitGradScale, logitGradScale};
  const float vScale[2] = {valueGradScale, valueGradScale};
  store_rows(head_base(gradK, b, h), gradK.ss, k0, keys, D, tx, ty, dk, kScale);
  store_rows(head_base(gradV, b, h), gradV.ss, k0, keys, D, tx, ty, dv, vScale);
}
`;

const modules = new Map<number, KernelModuleSource>();

/** The module for head sizes up to `paddedDim` (a multiple of 32). */
export function attentionModule(paddedDim: (typeof ATTENTION_PADDED_DIMS)[number]): KernelModuleSource {
  let module = modules.get(paddedDim);
  if (!module) {
    module = { name: `attention_d${paddedDim}`, source: [PRELUDE, source(paddedDim)].join('\n'), options: [] };
    modules.set(paddedDim, module);
  }
  return module;
}
