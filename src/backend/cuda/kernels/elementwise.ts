/**
 * Element-wise kernels: unary functions and their derivatives, broadcasting binary ops, where,
 * strided copies. The math is float32 with formulas chosen to avoid the cancellations a float64
 * reference does not suffer from (gelu through erfc, tanh' as sech², sigmoid' as σ(x)σ(−x)).
 */
import type { BinaryKind, UnaryKind } from '../../backend.ts';
import type { KernelModuleSource } from '../modules.ts';
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
  // The read format and the output's type are template parameters of the loop, so the common
  // float32 kernels keep their loop as it was and the rounding ones carry no per-element branch.
  const dispatch = (body: string, args: string) =>
    `  if (fmt == 1) ${body}<1>(${args});\n  else if (fmt == 2) ${body}<2>(${args});\n  else ${body}<0>(${args});`;
  const dispatchOut = (body: string, args: string) =>
    [0, 1, 2]
      .map((out) => `  ${out ? 'else ' : ''}if (outFmt == ${out}) {\n    if (fmt == 1) ${body}<${out}, 1>(${args});\n    else if (fmt == 2) ${body}<${out}, 2>(${args});\n    else ${body}<${out}, 0>(${args});\n  }`)
      .join('\n');
  const forward = (Object.keys(DERIVATIVE) as UnaryKind[]).map(
    (kind) => `__device__ __forceinline__ float unary_fn_${kind}(float v, float outScale) { return ${forwardExpression(kind)}; }
template <int OUT, int FMT>
__device__ __forceinline__ void unary_loop_${kind}(const float *x, void *out, int n, float inScale, float outScale, int aligned) {
${contiguousLoop(
  `    float4 a = reinterpret_cast<const float4 *>(x)[i], o;
${LANES.map((l) => `    o.${l} = unary_fn_${kind}(inScale * rounded_as<FMT>(a.${l}), outScale);`).join('\n')}
    store4_as<OUT>(out, i, o);`,
  `    store_as<OUT>(out, i, unary_fn_${kind}(inScale * rounded_as<FMT>(x[i]), outScale));`,
)}
}
extern "C" __global__ void unary_${kind}(const float *x, void *out, int n, float inScale, float outScale, int aligned, int fmt, int outFmt) {
${dispatchOut(`unary_loop_${kind}`, 'x, out, n, inScale, outScale, aligned')}
}`,
  );
  const grads = Object.entries(DERIVATIVE).map(
    ([kind, expr]) => `__device__ __forceinline__ float unary_grad_fn_${kind}(float v, float g, float s) { (void)v; return s * (${expr}) * g; }
template <int FMT>
__device__ __forceinline__ void unary_grad_loop_${kind}(const float *x, const float *g, float *gx, int n, float inScale, float s, int aligned) {
${contiguousLoop(
  `    float4 a = reinterpret_cast<const float4 *>(x)[i], b = reinterpret_cast<const float4 *>(g)[i], o;
${LANES.map((l) => `    o.${l} = unary_grad_fn_${kind}(inScale * rounded_as<FMT>(a.${l}), rounded_as<FMT>(b.${l}), s);`).join('\n')}
    reinterpret_cast<float4 *>(gx)[i] = o;`,
  `    gx[i] = unary_grad_fn_${kind}(inScale * rounded_as<FMT>(x[i]), rounded_as<FMT>(g[i]), s);`,
)}
}
extern "C" __global__ void unary_grad_${kind}(const float *x, const float *g, float *gx, int n, float inScale, float s, int aligned, int fmt) {
${dispatch(`unary_grad_loop_${kind}`, 'x, g, gx, n, inScale, s, aligned')}
}`,
  );
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
  source: [PRELUDE, HELPERS, unaryKernels(), binaryKernels(), OTHER_KERNELS].join('\n'),
  options: [],
};
