/**
 * Element-wise kernels: unary functions and their derivatives, broadcasting binary ops, where,
 * strided copies. The math is float32 with formulas chosen to avoid the cancellations a float64
 * reference does not suffer from (gelu through erfc, tanh' as sech², sigmoid' as σ(x)σ(−x)).
 */
import type { BinaryKind, UnaryKind } from '../../backend.ts';
import type { KernelModuleSource } from '../modules.ts';
import { STORAGE16_UNARY_KINDS } from '../../unary-rules.ts';
import { PRELUDE } from './prelude.ts';

export const UNARY_KINDS: readonly UnaryKind[] = [
  'copy', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'reciprocal', 'square', 'tanh', 'sigmoid', 'relu', 'gelu', 'geluTanh', 'sin', 'cos',
];
export const BINARY_KINDS: readonly BinaryKind[] = ['add', 'mul', 'div', 'max', 'min', 'eq', 'gt', 'ge'];

/** f(v) for each kind but relu ('copy' runs as scale_copy unless it rounds as it reads or writes 16 bits). */
const FORWARD: Record<Exclude<UnaryKind, 'relu'>, string> = {
  copy: 'v',
  abs: 'fabsf(v)',
  exp: 'expf(v)',
  log: 'logf(v)',
  sqrt: 'sqrtf(v)',
  rsqrt: '1.0f / sqrtf(v)',
  reciprocal: '1.0f / v',
  square: 'v * v',
  tanh: 'tanhf(v)',
  sigmoid: 'sigmoid_f(v)',
  gelu: '0.5f * v * erfcf(-v * INV_SQRT2)',
  geluTanh: 'v * sigmoid_f(2.0f * gelu_tanh_inner(v))',
  sin: 'sinf(v)',
  cos: 'cosf(v)',
};

/** outScale·f(v); relu gives +0 below zero whatever the scale's sign. */
function forwardExpression(kind: UnaryKind): string {
  return kind === 'relu' ? 'v > 0.0f ? outScale * v : 0.0f' : `outScale * (${FORWARD[kind]})`;
}

/** f'(v) for each kind. */
const DERIVATIVE: Record<UnaryKind, string> = {
  copy: '1.0f',
  abs: '(v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : 0.0f))',
  exp: 'expf(v)',
  log: '1.0f / v',
  sqrt: '0.5f / sqrtf(v)',
  rsqrt: '-0.5f / (v * sqrtf(v))',
  reciprocal: '-1.0f / (v * v)',
  square: '2.0f * v',
  tanh: 'sech2_f(v)',
  sigmoid: 'sigmoid_f(v) * sigmoid_f(-v)',
  relu: '(v > 0.0f ? 1.0f : 0.0f)',
  gelu: '0.5f * erfcf(-v * INV_SQRT2) + v * INV_SQRT_2PI * expf(-0.5f * v * v)',
  geluTanh: 'gelu_tanh_grad(v)',
  sin: 'cosf(v)',
  cos: '-sinf(v)',
};

/** (a, b) → value, with scaled operands x = sa·a, y = sb·b where the kind says so. */
const BINARY: Record<BinaryKind, string> = {
  // Spelled out so that layer_norm's fused residual add (residual_sum in nn.ts) rounds the same way.
  add: '__fmaf_rn(sa, a, __fmul_rn(sb, b))',
  mul: 's * a * b',
  div: '(s * a) / b',
  max: 'nan_max(sa * a, sb * b)',
  min: 'nan_min(sa * a, sb * b)',
  eq: '(sa * a == sb * b ? 1.0f : 0.0f)',
  gt: '(sa * a > sb * b ? 1.0f : 0.0f)',
  ge: '(sa * a >= sb * b ? 1.0f : 0.0f)',
};

const HELPERS = String.raw`
#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f
#define GELU_TANH_C 0.79788456080286536f

__device__ __forceinline__ float sigmoid_f(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}
/** 1 − tanh²(x) without the cancellation of the literal formula. */
__device__ __forceinline__ float sech2_f(float x) {
  float c = coshf(x);
  return 1.0f / (c * c);
}
__device__ __forceinline__ float gelu_tanh_inner(float x) { return GELU_TANH_C * (x + 0.044715f * x * x * x); }
/** d/dx of 0.5·x·(1 + tanh(u(x))), with 0.5·(1 + tanh u) = σ(2u). */
__device__ __forceinline__ float gelu_tanh_grad(float x) {
  float u = gelu_tanh_inner(x);
  return sigmoid_f(2.0f * u) + 0.5f * x * sech2_f(u) * GELU_TANH_C * (1.0f + 3.0f * 0.044715f * x * x);
}
`;

/**
 * Contiguous element-wise loops: float4 groups over the 16-byte aligned bulk (every storage starts
 * aligned), then the remaining 0..3 elements one per thread.
 */
function contiguousLoop(body4: string, body1: string): string {
  return `  int n4 = aligned ? (n >> 2) : 0;
  GRID_STRIDE(i, n4) {
${body4}
  }
  for (int i = (n4 << 2) + blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
${body1}
  }`;
}

const LANES = ['x', 'y', 'z', 'w'] as const;

function unaryKernels(): string {
  // Formats are template parameters of the loops, so the common float32 kernels keep their loop
  // as it was and the 16-bit ones carry no per-element branch. A 16-bit input is in the read
  // format's format (the host checks), so it is read as stored: rounding it would change nothing.
  const read = (type: string, pointer: string, vector: boolean) =>
    vector ? `load4_as<${type}>(${pointer}, i)` : `load_as<${type}>(${pointer}, i)`;
  const forward = (Object.keys(DERIVATIVE) as UnaryKind[]).map((kind) => {
    const fn = (v: string) => `unary_fn_${kind}(inScale * rounded_as<XT ? 0 : FMT>(${v}), outScale)`;
    // (outFmt, fmt, x16) combinations: any output type; a 16-bit x only under a read format.
    const cases: string[] = [];
    for (const out of [0, 1, 2]) {
      for (const fmt of [0, 1, 2]) {
        for (const x16 of STORAGE16_UNARY_KINDS.includes(kind) && fmt !== 0 ? [0, 1] : [0]) {
          cases.push(`    case ${(out * 3 + fmt) * 2 + x16}: unary_loop_${kind}<${out}, ${fmt}, ${x16 ? fmt : 0}>(x, out, n, inScale, outScale, aligned); break;`);
        }
      }
    }
    return `__device__ __forceinline__ float unary_fn_${kind}(float v, float outScale) { return ${forwardExpression(kind)}; }
template <int OUT, int FMT, int XT>
__device__ __forceinline__ void unary_loop_${kind}(const void *x, void *out, int n, float inScale, float outScale, int aligned) {
${contiguousLoop(
  `    float4 a = ${read('XT', 'x', true)}, o;
${LANES.map((l) => `    o.${l} = ${fn(`a.${l}`)};`).join('\n')}
    store4_as<OUT>(out, i, o);`,
  `    store_as<OUT>(out, i, ${fn(read('XT', 'x', false))});`,
)}
}
extern "C" __global__ void unary_${kind}(const void *x, void *out, int n, float inScale, float outScale, int aligned, int fmt, int outFmt, int x16) {
  switch ((outFmt * 3 + fmt) * 2 + x16) {
${cases.join('\n')}
  }
}`;
  });
  const grads = (Object.entries(DERIVATIVE) as [UnaryKind, string][]).map(([kind, expr]) => {
    const fn = (v: string, g: string) => `unary_grad_fn_${kind}(inScale * rounded_as<XT ? 0 : FMT>(${v}), rounded_as<GT ? 0 : FMT>(${g}), s)`;
    // (fmt, x16, g16, gx16) combinations: 16-bit storage only under a read format, and in its format.
    const cases: string[] = ['    case 0: unary_grad_loop_' + kind + '<0, 0, 0, 0>(x, g, gx, n, inScale, s, aligned); break;'];
    for (const fmt of [1, 2]) {
      const flags = STORAGE16_UNARY_KINDS.includes(kind) ? [0, 1, 2, 3, 4, 5, 6, 7] : [0];
      for (const f of flags) {
        const [x16, g16, gx16] = [f & 1, (f >> 1) & 1, (f >> 2) & 1];
        cases.push(`    case ${fmt * 8 + f}: unary_grad_loop_${kind}<${fmt}, ${x16 ? fmt : 0}, ${g16 ? fmt : 0}, ${gx16 ? fmt : 0}>(x, g, gx, n, inScale, s, aligned); break;`);
      }
    }
    return `__device__ __forceinline__ float unary_grad_fn_${kind}(float v, float g, float s) { (void)v; return s * (${expr}) * g; }
template <int FMT, int XT, int GT, int OUT>
__device__ __forceinline__ void unary_grad_loop_${kind}(const void *x, const void *g, void *gx, int n, float inScale, float s, int aligned) {
${contiguousLoop(
  `    float4 a = ${read('XT', 'x', true)}, b = ${read('GT', 'g', true)}, o;
${LANES.map((l) => `    o.${l} = ${fn(`a.${l}`, `b.${l}`)};`).join('\n')}
    store4_as<OUT>(gx, i, o);`,
  `    store_as<OUT>(gx, i, ${fn(read('XT', 'x', false), read('GT', 'g', false))});`,
)}
}
extern "C" __global__ void unary_grad_${kind}(const void *x, const void *g, void *gx, int n, float inScale, float s, int aligned, int fmt, int x16, int g16, int gx16) {
  switch (fmt * 8 + x16 + 2 * g16 + 4 * gx16) {
${cases.join('\n')}
  }
}`;
  });
  return [...forward, ...grads].join('\n');
}

function binaryKernels(): string {
  return Object.entries(BINARY)
    .map(
      ([kind, expr]) => `__device__ __forceinline__ float binary_op_${kind}(float a, float b, float sa, float sb, float s) { return ${expr}; }
extern "C" __global__ void binary_${kind}_nd(const float *pa, const float *pb, float *out, int n, Strided st, float sa, float sb, float s) {
  GRID_STRIDE(i, n) {
    int off[2];
    strided_offsets<2>(st, i, off);
    out[i] = binary_op_${kind}(pa[off[0]], pb[off[1]], sa, sb, s);
  }
}
/** Groups of four along the innermost axis (see vectorise in strided.ts); out is contiguous. */
extern "C" __global__ void binary_${kind}_v4(const float *pa, const float *pb, float *out, int n4, Strided st, int vectorMask, float sa, float sb, float s) {
  GRID_STRIDE(i, n4) {
    int off[2];
    strided_offsets<2>(st, i, off);
    float4 a = load4(pa, off[0], vectorMask & 1), b = load4(pb, off[1], vectorMask & 2), o;
${LANES.map((l) => `    o.${l} = binary_op_${kind}(a.${l}, b.${l}, sa, sb, s);`).join('\n')}
    reinterpret_cast<float4 *>(out)[i] = o;
  }
}`,
    )
    .join('\n');
}

/** Elements per block-sized unit of work of copy16_multi (a multiple of four). */
export const COPY16_CHUNK = 4096;
/** 32-bit words per entry of copy16_multi's table (its Copy16Entry struct). */
export const COPY16_TABLE_WORDS = 8;

const COPY16_MULTI = String.raw`
/** One copy of copy16_multi's table, as elementwise-ops.ts writes it (32 bytes). */
struct Copy16Entry {
  const float *src;
  unsigned short *dst;
  int n;
  /** First chunk of this copy: the chunk counts of the copies before it, summed. */
  int chunkStart;
  /** src and dst 16-byte aligned: float4 in, four codes out. */
  int aligned;
  int pad;
};

template <int FMT>
__device__ __forceinline__ void copy16_chunk(const Copy16Entry &t, long long start, int len) {
  const float *src = t.src + start;
  unsigned short *dst = t.dst + start;
  const int len4 = t.aligned ? (len >> 2) : 0;
  for (int i = threadIdx.x; i < len4; i += blockDim.x) store4_as<FMT>(dst, i, reinterpret_cast<const float4 *>(src)[i]);
  for (int i = (len4 << 2) + threadIdx.x; i < len; i += blockDim.x) store_as<FMT>(dst, i, src[i]);
}

/** Every copy of the table: dst = src rounded to FMT (store_as's codes), a block per ${COPY16_CHUNK}-element chunk. */
extern "C" __global__ void copy16_multi(const Copy16Entry *table, int count, int chunks, int fmt) {
  for (int chunk = blockIdx.x; chunk < chunks; chunk += gridDim.x) {
    const Copy16Entry t = table[chunk_owner(table, count, chunk)];
    const long long start = (long long)(chunk - t.chunkStart) * ${COPY16_CHUNK};
    const int len = (int)min((long long)${COPY16_CHUNK}, (long long)t.n - start);
    if (fmt == 1) copy16_chunk<1>(t, start, len);
    else copy16_chunk<2>(t, start, len);
  }
}
`;

const OTHER_KERNELS = String.raw`
/** x·s (the unary 'copy' with its two scales folded). */
extern "C" __global__ void scale_copy(const float *x, float *out, int n, float s, int aligned) {
  int n4 = aligned ? (n >> 2) : 0;
  GRID_STRIDE(i, n4) {
    float4 a = reinterpret_cast<const float4 *>(x)[i];
    reinterpret_cast<float4 *>(out)[i] = make_float4(s * a.x, s * a.y, s * a.z, s * a.w);
  }
  for (int i = (n4 << 2) + blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) out[i] = s * x[i];
}
extern "C" __global__ void where_nd(const float *cond, const float *pa, const float *pb, float *out, int n, Strided st) {
  GRID_STRIDE(i, n) {
    int off[3];
    strided_offsets<3>(st, i, off);
    out[i] = cond[off[0]] != 0.0f ? pa[off[1]] : pb[off[2]];
  }
}
extern "C" __global__ void where_v4(const float *cond, const float *pa, const float *pb, float *out, int n4, Strided st, int vectorMask) {
  GRID_STRIDE(i, n4) {
    int off[3];
    strided_offsets<3>(st, i, off);
    float4 c = load4(cond, off[0], vectorMask & 1), a = load4(pa, off[1], vectorMask & 2), b = load4(pb, off[2], vectorMask & 4);
    reinterpret_cast<float4 *>(out)[i] = make_float4(c.x != 0.0f ? a.x : b.x, c.y != 0.0f ? a.y : b.y, c.z != 0.0f ? a.z : b.z, c.w != 0.0f ? a.w : b.w);
  }
}
/** dst[view] = src[view] as raw 32-bit words (float or int32 alike). */
extern "C" __global__ void copy_bits_nd(const u32 *src, u32 *dst, int n, Strided st) {
  GRID_STRIDE(i, n) {
    int off[2];
    strided_offsets<2>(st, i, off);
    dst[off[1]] = src[off[0]];
  }
}
extern "C" __global__ void copy_bits_v4(const u32 *src, u32 *dst, int n4, Strided st, int vectorMask) {
  GRID_STRIDE(i, n4) {
    int off[2];
    strided_offsets<2>(st, i, off);
    uint4 v;
    if (vectorMask & 1) v = *reinterpret_cast<const uint4 *>(src + off[0]);
    else v.x = v.y = v.z = v.w = src[off[0]];
    *reinterpret_cast<uint4 *>(dst + off[1]) = v;
  }
}
extern "C" __global__ void copy_scaled_nd(const float *src, float *dst, int n, Strided st, float s) {
  GRID_STRIDE(i, n) {
    int off[2];
    strided_offsets<2>(st, i, off);
    dst[off[1]] = s * src[off[0]];
  }
}
extern "C" __global__ void copy_scaled_v4(const float *src, float *dst, int n4, Strided st, int vectorMask, float s) {
  GRID_STRIDE(i, n4) {
    int off[2];
    strided_offsets<2>(st, i, off);
    float4 a = load4(src, off[0], vectorMask & 1);
    *reinterpret_cast<float4 *>(dst + off[1]) = make_float4(s * a.x, s * a.y, s * a.z, s * a.w);
  }
}
/** dst += s·src where every destination element is distinct: a plain read-modify-write. */
extern "C" __global__ void copy_accumulate_nd(const float *src, float *dst, int n, Strided st, float s) {
  GRID_STRIDE(i, n) {
    int off[2];
    strided_offsets<2>(st, i, off);
    dst[off[1]] = fmaf(s, src[off[0]], dst[off[1]]);
  }
}
extern "C" __global__ void copy_accumulate_v4(const float *src, float *dst, int n4, Strided st, int vectorMask, float s) {
  GRID_STRIDE(i, n4) {
    int off[2];
    strided_offsets<2>(st, i, off);
    float4 a = load4(src, off[0], vectorMask & 1);
    float4 *d = reinterpret_cast<float4 *>(dst + off[1]);
    float4 o = *d;
    *d = make_float4(fmaf(s, a.x, o.x), fmaf(s, a.y, o.y), fmaf(s, a.z, o.z), fmaf(s, a.w, o.w));
  }
}
/** dst += s·src where destinations repeat (a broadcast gradient): atomic adds. */
extern "C" __global__ void copy_accumulate_atomic_nd(const float *src, float *dst, int n, Strided st, float s) {
  GRID_STRIDE(i, n) {
    int off[2];
    strided_offsets<2>(st, i, off);
    atomicAdd(dst + off[1], s * src[off[0]]);
  }
}
/** C = beta·C over 'batch' m×n matrices (beta = 0 writes zeros without reading C). */
extern "C" __global__ void scale_matrices(float *c, int m, int n, int ldc, long long strideC, int batch, float beta) {
  long long total = (long long)m * n * batch;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
    long long b = i / ((long long)m * n);
    long long r = (i / n) % m;
    long long col = i % n;
    float *p = c + b * strideC + r * ldc + col;
    *p = beta == 0.0f ? 0.0f : beta * *p;
  }
}
`;

export const ELEMENTWISE_MODULE: KernelModuleSource = {
  name: 'elementwise',
  source: [PRELUDE, HELPERS, unaryKernels(), binaryKernels(), OTHER_KERNELS, COPY16_MULTI].join('\n'),
  options: [],
};
