/**
 * Philox random numbers and quantisation, bit for bit the CPU twin's (src/tensor/philox.ts,
 * src/formats/quantise.ts). The counter of stream element i is (i/4 low, i/4 high, stream, epoch)
 * with epoch read on the device, so a captured graph draws new numbers after each increment.
 * Compiled with --fmad=false: the float64 arithmetic of uniform ranges and Box–Muller must round
 * exactly as the CPU's does.
 */
import type { KernelModuleSource } from '../modules.ts';
import { PRELUDE } from './prelude.ts';

/** Words of the QuantGrid struct (see src/backend/cuda/quantise-grid.ts). */
export const QUANT_GRID_WORDS = 9;
/** Elements per block-sized unit of work of quantise_multi (a multiple of four). */
export const QUANTISE_CHUNK = 2048;
/** 32-bit words per tensor of quantise_multi's table (its QuantiseTensor struct). */
export const QUANTISE_TABLE_WORDS = 8;

const PHILOX = String.raw`
struct Words4 { u32 w[4]; };

__device__ __forceinline__ Words4 philox4x32_10(u32 c0, u32 c1, u32 c2, u32 c3, u32 k0, u32 k1) {
  #pragma unroll
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9e3779b9u;
      k1 += 0xbb67ae85u;
    }
    u32 hi0 = __umulhi(0xd2511f53u, c0), lo0 = 0xd2511f53u * c0;
    u32 hi1 = __umulhi(0xcd9e8d57u, c2), lo1 = 0xcd9e8d57u * c2;
    u32 n0 = hi1 ^ c1 ^ k0;
    u32 n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  Words4 out;
  out.w[0] = c0; out.w[1] = c1; out.w[2] = c2; out.w[3] = c3;
  return out;
}

/** The four words of stream block b. */
__device__ __forceinline__ Words4 stream_block(long long b, u32 stream, u32 epoch, u32 k0, u32 k1) {
  return philox4x32_10((u32)b, (u32)((unsigned long long)b >> 32), stream, epoch, k0, k1);
}

__device__ __forceinline__ u32 read_epoch(const int *epoch) { return epoch ? (u32)epoch[0] : 0u; }

/** ((w >>> 9) + 0.5)·2^-23: exact in float32 and in float64. */
__device__ __forceinline__ double word_to_uniform(u32 w) { return ((double)(w >> 9) + 0.5) * 1.1920928955078125e-7; }
`;

const RANDOM = String.raw`
/** out[j] = uniform(element j), mapped to [a, b) when (a, b) is not (0, 1); one thread per 4-word block. */
extern "C" __global__ void random_uniform(float *out, int n, u32 k0, u32 k1, u32 stream, const int *epochPtr, double a, double b, int aligned) {
  u32 epoch = read_epoch(epochPtr);
  int blocks = (n + 3) / 4;
  bool plain = a == 0.0 && b == 1.0;
  GRID_STRIDE(blockIndex, blocks) {
    Words4 words = stream_block(blockIndex, stream, epoch, k0, k1);
    float values[4];
    #pragma unroll
    for (int w = 0; w < 4; ++w) {
      float u = (float)word_to_uniform(words.w[w]);
      values[w] = plain ? u : (float)(a + (b - a) * (double)u);
    }
    int first = blockIndex * 4;
    if (aligned && first + 3 < n) {
      reinterpret_cast<float4 *>(out)[blockIndex] = make_float4(values[0], values[1], values[2], values[3]);
      continue;
    }
    for (int w = 0; w < 4 && first + w < n; ++w) out[first + w] = values[w];
  }
}

/** Box–Muller on the uniform pairs (2k, 2k+1), in float64 as the CPU twin computes it. */
extern "C" __global__ void random_normal(float *out, int n, u32 k0, u32 k1, u32 stream, const int *epochPtr, double mean, double std, int aligned) {
  (void)aligned;
  u32 epoch = read_epoch(epochPtr);
  int blocks = (n + 3) / 4;
  const double twoPi = 6.283185307179586;
  GRID_STRIDE(blockIndex, blocks) {
    Words4 words = stream_block(blockIndex, stream, epoch, k0, k1);
    for (int pair = 0; pair < 2; ++pair) {
      int j = blockIndex * 4 + 2 * pair;
      if (j >= n) break;
      double u1 = word_to_uniform(words.w[2 * pair]);
      double u2 = word_to_uniform(words.w[2 * pair + 1]);
      double r = sqrt(-2.0 * log(u1));
      double angle = twoPi * u2;
      out[j] = (float)(mean + std * r * cos(angle));
      if (j + 1 < n) out[j + 1] = (float)(mean + std * r * sin(angle));
    }
  }
}
`;

const QUANTISE = String.raw`
/** A format's rounding grid as float32 bit patterns (built on the host from the format's limits). */
struct QuantGrid {
  int mantissaBits;
  int minExponent;
  int bias;
  int normalShift;
  u32 normalFromBits;
  u32 maxBits;
  u32 minSubnormalBits;
  u32 overflowBits;
  u32 infinityBits;
};

#define ABS_MASK 0x7fffffffu
#define INF_BITS 0x7f800000u
#define F32_MIN_NORMAL_BITS 0x00800000u

__device__ __forceinline__ int shift_below_normal(u32 a, const QuantGrid &g) {
  int field = (int)(a >> 23);
  int exponent = field > 0 ? field - 127 : 31 - __clz((int)a) - 149;
  int e = exponent > g.minExponent ? exponent : g.minExponent;
  int f = exponent > -126 ? exponent : -126;
  return e - g.mantissaBits - f + 23;
}

__device__ __forceinline__ u32 significand_of(u32 a) { return a >= F32_MIN_NORMAL_BITS ? ((a & 0x7fffffu) | 0x800000u) : a; }

__device__ __forceinline__ u32 code_parity(u32 a, int shift, const QuantGrid &g) {
  if (shift < 23) return (a >> shift) & 1u;
  if (a < F32_MIN_NORMAL_BITS) return 0u;
  int exponent = (int)(a >> 23) - 127;
  return exponent >= g.minExponent ? (u32)((exponent + g.bias) & 1) : 1u;
}

__device__ __forceinline__ u32 round_nearest_magnitude(u32 a, const QuantGrid &g) {
  if (a >= g.normalFromBits) {
    if (g.normalShift == 0) return a;
    if (g.normalShift < 23) {
      u32 mask = (1u << g.normalShift) - 1u;
      return (a + (mask >> 1) + ((a >> g.normalShift) & 1u)) & ~mask;
    }
    return (a + 0x3fffffu + code_parity(a, 23, g)) & ~0x7fffffu;
  }
  if (a == 0u) return 0u;
  int shift = shift_below_normal(a, g);
  if (shift <= 0) return a;
  if (shift <= 23) {
    u32 mask = (1u << shift) - 1u;
    return (a + (mask >> 1) + code_parity(a, shift, g)) & ~mask;
  }
  return (shift <= 25 && significand_of(a) > (1u << (shift - 1))) ? g.minSubnormalBits : 0u;
}

__device__ __forceinline__ u32 round_stochastic_magnitude(u32 a, const QuantGrid &g, u32 word) {
  if (a >= g.normalFromBits) {
    u32 mask = g.normalShift > 0 ? (1u << g.normalShift) - 1u : 0u;
    return (a + (word & mask)) & ~mask;
  }
  if (a == 0u) return 0u;
  int shift = shift_below_normal(a, g);
  if (shift <= 0) return a;
  if (shift <= 23) {
    u32 mask = (1u << shift) - 1u;
    return (a + (word & mask)) & ~mask;
  }
  u64 sig = significand_of(a);
  if (shift <= 32) {
    u64 modulus = 1ull << shift;
    return sig + ((u64)word & (modulus - 1ull)) >= modulus ? g.minSubnormalBits : 0u;
  }
  int down = shift - 32;
  u64 threshold = down >= 32 ? 0ull : (sig >> down);
  return (u64)word < threshold ? g.minSubnormalBits : 0u;
}

/** Sign, specials and overflow around a magnitude rounding. */
__device__ __forceinline__ u32 finish(u32 x, u32 a, u32 r, const QuantGrid &g) {
  return (x ^ a) | (r > g.maxBits ? g.overflowBits : r);
}

__device__ __forceinline__ u32 quantise_nearest(u32 x, const QuantGrid &g) {
  u32 a = x & ABS_MASK;
  if (a >= INF_BITS) return a == INF_BITS ? ((x ^ a) | g.infinityBits) : x;
  return finish(x, a, round_nearest_magnitude(a, g), g);
}

__device__ __forceinline__ u32 quantise_stochastic(u32 x, const QuantGrid &g, u32 word) {
  u32 a = x & ABS_MASK;
  if (a >= INF_BITS) return a == INF_BITS ? ((x ^ a) | g.infinityBits) : x;
  return finish(x, a, round_stochastic_magnitude(a, g, word), g);
}

/**
 * Rounds the group of four elements of stream block b (elements 4b..4b+3 below n): x[j] on the
 * format's grid, with viaFp16 rounded to fp16 (nearest-even) first. Stochastic rounding uses
 * stream element j for x[j], one word per element.
 */
__device__ __forceinline__ void quantise_group(const u32 *x, u32 *out, int n, int b, bool aligned, const QuantGrid &target, const QuantGrid &fp16,
                                               int viaFp16, int stochastic, u32 k0, u32 k1, u32 stream, u32 epoch) {
  Words4 words;
  if (stochastic) words = stream_block(b, stream, epoch, k0, k1);
  int first = b * 4;
  if (aligned && first + 3 < n) {
    // A whole group of four: one 16-byte load and store, the same per-element rounding.
    uint4 in = reinterpret_cast<const uint4 *>(x)[b];
    u32 v[4] = {in.x, in.y, in.z, in.w};
    #pragma unroll
    for (int w = 0; w < 4; ++w) {
      if (viaFp16) v[w] = quantise_nearest(v[w], fp16);
      v[w] = stochastic ? quantise_stochastic(v[w], target, words.w[w]) : quantise_nearest(v[w], target);
    }
    reinterpret_cast<uint4 *>(out)[b] = make_uint4(v[0], v[1], v[2], v[3]);
    return;
  }
  for (int w = 0; w < 4; ++w) {
    int j = first + w;
    if (j >= n) break;
    u32 v = x[j];
    if (viaFp16) v = quantise_nearest(v, fp16);
    out[j] = stochastic ? quantise_stochastic(v, target, words.w[w]) : quantise_nearest(v, target);
  }
}

/** out[j] = x[j] rounded (quantise_group), one thread per group of four in a grid-stride loop. */
extern "C" __global__ void quantise(const u32 *x, u32 *out, int n, QuantGrid target, QuantGrid fp16, int viaFp16, int stochastic,
                                    u32 k0, u32 k1, u32 stream, const int *epochPtr, int aligned) {
  u32 epoch = read_epoch(epochPtr);
  int blocks = (n + 3) / 4;
  GRID_STRIDE(blockIndex, blocks) {
    quantise_group(x, out, n, blockIndex, aligned, target, fp16, viaFp16, stochastic, k0, k1, stream, epoch);
  }
}

/** One tensor of quantise_multi's table, as random-ops.ts writes it (32 bytes). */
struct QuantiseTensor {
  u32 *data;
  int n;
  u32 stream;
  int aligned;
  /** First chunk of this tensor: the chunk counts of the tensors before it, summed. */
  int chunkStart;
  int pad[2];
};

#define QUANTISE_CHUNK ${QUANTISE_CHUNK}

/**
 * Every tensor of the table rounded in place, each as the quantise kernel rounds it on its own
 * stream. The tensors are cut into QUANTISE_CHUNK-element chunks (a multiple of four, so groups
 * of four never straddle chunks); each block takes chunks in a grid-stride loop and finds the
 * chunk's tensor with chunk_owner.
 */
extern "C" __global__ void quantise_multi(const QuantiseTensor *table, int count, int chunks, QuantGrid target, QuantGrid fp16, int viaFp16,
                                          int stochastic, u32 k0, u32 k1, const int *epochPtr) {
  u32 epoch = read_epoch(epochPtr);
  for (int chunk = blockIdx.x; chunk < chunks; chunk += gridDim.x) {
    const QuantiseTensor &e = table[chunk_owner(table, count, chunk)];
    int firstGroup = (chunk - e.chunkStart) * (QUANTISE_CHUNK / 4);
    int groups = min((e.n + 3) / 4 - firstGroup, QUANTISE_CHUNK / 4);
    for (int g = threadIdx.x; g < groups; g += blockDim.x) {
      quantise_group(e.data, e.data, e.n, firstGroup + g, e.aligned, target, fp16, viaFp16, stochastic, k0, k1, e.stream, epoch);
    }
  }
}

/** counter[0] += 1 on the device (the per-step epoch). */
extern "C" __global__ void increment_counter(int *counter) {
  if (blockIdx.x == 0 && threadIdx.x == 0) counter[0] += 1;
}
`;

export const RANDOM_MODULE: KernelModuleSource = {
  name: 'random',
  source: [PRELUDE, PHILOX, RANDOM, QUANTISE].join('\n'),
  options: ['--fmad=false'],
};
