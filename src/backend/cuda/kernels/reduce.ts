/**
 * Reductions. Sums accumulate in float64 (free for memory-bound kernels, and it keeps the result
 * within a few float32 ulps of the CPU twin's float64 sum); max/min propagate NaN like the twin.
 */
import type { ReduceKind } from '../../backend.ts';
import type { KernelModuleSource } from '../modules.ts';
import { PRELUDE } from './prelude.ts';

export const REDUCE_KINDS: readonly ReduceKind[] = ['sum', 'sumSquares', 'max', 'min'];

/** Words of the ReduceDims struct: keptRank, keptShape[6], keptStride[6], redRank, redShape[6], redStride[6]. */
export const REDUCE_DIMS_WORDS = 26;

interface Accumulator {
  type: string;
  init: string;
  add: (acc: string, v: string) => string;
  block: (acc: string) => string;
  combine: (a: string, b: string) => string;
}

const ACCUMULATORS: Record<ReduceKind, Accumulator> = {
  sum: { type: 'double', init: '0.0', add: (a, v) => `${a} + (double)${v}`, block: (a) => `block_sum(${a})`, combine: (a, b) => `${a} + ${b}` },
  sumSquares: {
    type: 'double',
    init: '0.0',
    add: (a, v) => `${a} + (double)${v} * (double)${v}`,
    block: (a) => `block_sum(${a})`,
    combine: (a, b) => `${a} + ${b}`,
  },
  max: { type: 'float', init: '-f32_inf()', add: (a, v) => `nan_max(${a}, ${v})`, block: (a) => `block_max(${a})`, combine: (a, b) => `nan_max(${a}, ${b})` },
  min: { type: 'float', init: 'f32_inf()', add: (a, v) => `nan_min(${a}, ${v})`, block: (a) => `block_min(${a})`, combine: (a, b) => `nan_min(${a}, ${b})` },
};

const DIMS = String.raw`
struct ReduceDims {
  int keptRank;
  int keptShape[MAX_RANK];
  int keptStride[MAX_RANK];
  int redRank;
  int redShape[MAX_RANK];
  int redStride[MAX_RANK];
};
__device__ __forceinline__ long long decompose(int index, int rank, const int *shape, const int *stride) {
  long long offset = 0;
  for (int d = rank - 1; d >= 0; --d) {
    offset += (long long)(index % shape[d]) * stride[d];
    index /= shape[d];
  }
  return offset;
}
`;

function kernelsFor(kind: ReduceKind): string {
  const acc = ACCUMULATORS[kind];
  return String.raw`
/** One block per output; the reduced elements are found by decomposing the reduced index. */
extern "C" __global__ void reduce_general_${kind}(const float *x, float *out, int outputs, int reduced, ReduceDims d, double scale) {
  for (int o = blockIdx.x; o < outputs; o += gridDim.x) {
    long long base = decompose(o, d.keptRank, d.keptShape, d.keptStride);
    ${acc.type} acc = ${acc.init};
    for (int r = threadIdx.x; r < reduced; r += blockDim.x) {
      float v = x[base + decompose(r, d.redRank, d.redShape, d.redStride)];
      acc = ${acc.add('acc', 'v')};
    }
    acc = ${acc.block('acc')};
    if (threadIdx.x == 0) out[o] = (float)(scale * (double)acc);
    __syncthreads();
  }
}
/**
 * x viewed as [outer, mid, inner], reduced over mid: 1024 threads = 32 columns × 32 row lanes,
 * so the loads of a warp are contiguous.
 */
extern "C" __global__ void reduce_mid_${kind}(const float *x, float *out, int outer, int mid, int inner, double scale) {
  __shared__ ${acc.type} partial[32][33];
  int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  int column = blockIdx.x * 32 + tx;
  for (int o = blockIdx.y; o < outer; o += gridDim.y) {
    ${acc.type} acc = ${acc.init};
    if (column < inner) {
      for (int m = ty; m < mid; m += 32) {
        float v = x[((long long)o * mid + m) * inner + column];
        acc = ${acc.add('acc', 'v')};
      }
    }
    partial[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && column < inner) {
      ${acc.type} total = partial[0][tx];
      for (int k = 1; k < 32; ++k) total = ${acc.combine('total', 'partial[k][tx]')};
      out[(long long)o * inner + column] = (float)(scale * (double)total);
    }
    __syncthreads();
  }
}
/**
 * reduce_mid for mid ≤ 32, a thread per output: it adds its column's rows in order, which is the
 * order (and so the result) of reduce_mid, whose 32 row-threads then hold one element each and
 * are combined in row order; without the block-wide step (the reference model's position
 * embedding gradient, 32 rows of 131072 columns: 36 µs in reduce_mid).
 */
extern "C" __global__ void reduce_mid_serial_${kind}(const float *x, float *out, int outer, int mid, int inner, double scale) {
  GRID_STRIDE(i, outer * inner) {
    int o = i / inner, column = i - o * inner;
    ${acc.type} total = ${acc.init};
    for (int m = 0; m < mid; ++m) {
      float v = x[((long long)o * mid + m) * inner + column];
      ${acc.type} one = ${acc.init};
      one = ${acc.add('one', 'v')};
      total = m == 0 ? one : ${acc.combine('total', 'one')};
    }
    out[i] = (float)(scale * (double)total);
  }
}
/**
 * reduce_mid split over fixed chunks of mid (for grids too small to fill the device): each block
 * writes its chunk's partial column sums, and the last block to finish combines the chunks of
 * every output in chunk order (as a second launch would; the counter only elects that block, so
 * the result stays deterministic) and sets the counter back to zero.
 */
extern "C" __global__ void reduce_mid_partial_${kind}(const float *x, ${acc.type} *partialOut, int outer, int mid, int inner, int chunkRows, int chunks,
                                                    float *out, double scale, unsigned int *counter) {
  __shared__ ${acc.type} partial[32][33];
  __shared__ bool lastBlock;
  int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  int column = blockIdx.x * 32 + tx;
  int o = blockIdx.y / chunks, chunk = blockIdx.y - o * chunks;
  int first = chunk * chunkRows, last = min(mid, first + chunkRows);
  ${acc.type} acc = ${acc.init};
  if (column < inner) {
    for (int m = first + ty; m < last; m += 32) {
      float v = x[((long long)o * mid + m) * inner + column];
      acc = ${acc.add('acc', 'v')};
    }
  }
  partial[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && column < inner) {
    ${acc.type} total = partial[0][tx];
    for (int k = 1; k < 32; ++k) total = ${acc.combine('total', 'partial[k][tx]')};
    partialOut[((long long)o * chunks + chunk) * inner + column] = total;
  }
  // This block's partials must be visible to whichever block finishes before it is counted.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) lastBlock = atomicAdd(counter, 1u) == gridDim.x * gridDim.y - 1;
  __syncthreads();
  if (!lastBlock) return;
  __threadfence();
  for (int i = threadIdx.x; i < outer * inner; i += blockDim.x) {
    int oo = i / inner, c = i - oo * inner;
    const ${acc.type} *p = partialOut + (long long)oo * chunks * inner + c;
    // __ldcg: straight from L2, where the other blocks' partials are (never this SM's L1).
    ${acc.type} total = __ldcg(p);
    for (int k = 1; k < chunks; ++k) total = ${acc.combine('total', '__ldcg(p + (long long)k * inner)')};
    out[i] = (float)(scale * (double)total);
  }
  if (threadIdx.x == 0) *counter = 0u;
}
`;
}

export const REDUCE_MODULE: KernelModuleSource = {
  name: 'reduce',
  source: [PRELUDE, DIMS, ...REDUCE_KINDS.map(kernelsFor)].join('\n'),
  options: [],
};
