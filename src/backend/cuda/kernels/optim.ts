/**
 * Optimiser updates. The step counter t is read on the device (a captured step advances it
 * itself), and the per-step constants are computed by every thread in float64 exactly as the CPU
 * twin computes them; grid-stride loops keep that to once per thread.
 */
import type { KernelModuleSource } from '../modules.ts';
import { PRELUDE } from './prelude.ts';

/** Elements per block-sized unit of work of adamw_multi (a multiple of four, for float4 access). */
export const ADAMW_CHUNK = 2048;
/** 32-bit words per tensor of adamw_multi's table (its AdamWTensor struct). */
export const ADAMW_TABLE_WORDS = 16;

const SOURCE = String.raw`
__device__ __forceinline__ void adamw_one(float &param, float grad, float &m, float &v, double beta1, double beta2, double eps, double gradScale,
                                          double stepSize, double wd) {
  double g = gradScale * (double)grad;
  double mi = beta1 * (double)m + (1.0 - beta1) * g;
  double vi = beta2 * (double)v + (1.0 - beta2) * g * g;
  m = (float)mi;
  v = (float)vi;
  double p = (double)param;
  param = (float)(p - wd * p - (stepSize * mi) / (sqrt(vi) + eps));
}

/** Elements 4i..4i+3 through 16-byte accesses (all four arrays 16-byte aligned). */
__device__ __forceinline__ void adamw_four(float *param, const float *grad, float *m, float *v, int i, double beta1, double beta2, double eps,
                                           double gradScale, double stepSize, double wd) {
  float4 p4 = reinterpret_cast<float4 *>(param)[i], m4 = reinterpret_cast<float4 *>(m)[i], v4 = reinterpret_cast<float4 *>(v)[i];
  float4 g4 = reinterpret_cast<const float4 *>(grad)[i];
  adamw_one(p4.x, g4.x, m4.x, v4.x, beta1, beta2, eps, gradScale, stepSize, wd);
  adamw_one(p4.y, g4.y, m4.y, v4.y, beta1, beta2, eps, gradScale, stepSize, wd);
  adamw_one(p4.z, g4.z, m4.z, v4.z, beta1, beta2, eps, gradScale, stepSize, wd);
  adamw_one(p4.w, g4.w, m4.w, v4.w, beta1, beta2, eps, gradScale, stepSize, wd);
  reinterpret_cast<float4 *>(param)[i] = p4;
  reinterpret_cast<float4 *>(m)[i] = m4;
  reinterpret_cast<float4 *>(v)[i] = v4;
}

extern "C" __global__ void adamw(float *param, const float *grad, float *m, float *v, int n, const int *step, double lr, double lrDecay,
                                 double lrScale, double beta1, double beta2, double eps, double weightDecay, double gradScale, int aligned) {
  double t = (double)step[0];
  double decay = pow(2.0, -(t - 1.0) * lrDecay);
  double stepSize = (lr * lrScale * decay * sqrt(1.0 - pow(beta2, t))) / (1.0 - pow(beta1, t));
  double wd = lr * weightDecay;
  // Groups of four through 16-byte accesses, then the 0..3 remaining elements.
  int n4 = aligned ? (n >> 2) : 0;
  GRID_STRIDE(i, n4) {
    adamw_four(param, grad, m, v, i, beta1, beta2, eps, gradScale, stepSize, wd);
  }
  for (int i = (n4 << 2) + blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
    adamw_one(param[i], grad[i], m[i], v[i], beta1, beta2, eps, gradScale, stepSize, wd);
  }
}

/** One tensor of adamw_multi's table, as optim-ops.ts writes it (64 bytes). */
struct AdamWTensor {
  float *param;
  const float *grad;
  float *m;
  float *v;
  double lrScale;
  double weightDecay;
  int n;
  int aligned;
  /** First chunk of this tensor: the chunk counts of the tensors before it, summed. */
  int chunkStart;
  int pad;
};

#define ADAMW_CHUNK ${ADAMW_CHUNK}

/**
 * adamw over every tensor of the table in one launch. The tensors are cut into ADAMW_CHUNK-element
 * chunks (a multiple of four, so a chunk of an aligned tensor starts 16-byte aligned); each block
 * takes chunks in a grid-stride loop and finds the chunk's tensor with chunk_owner.
 * The float64 expressions are adamw's, in the same order, so results are bit-identical to it.
 */
extern "C" __global__ void adamw_multi(const AdamWTensor *table, int count, int chunks, const int *step, double lr, double lrDecay,
                                       double beta1, double beta2, double eps, double gradScale) {
  double t = (double)step[0];
  double decay = pow(2.0, -(t - 1.0) * lrDecay);
  double correction2 = sqrt(1.0 - pow(beta2, t));
  double correction1 = 1.0 - pow(beta1, t);
  for (int chunk = blockIdx.x; chunk < chunks; chunk += gridDim.x) {
    const AdamWTensor &e = table[chunk_owner(table, count, chunk)];
    double stepSize = (lr * e.lrScale * decay * correction2) / correction1;
    double wd = lr * e.weightDecay;
    int begin = (chunk - e.chunkStart) * ADAMW_CHUNK;
    int len = min(e.n - begin, ADAMW_CHUNK);
    float *param = e.param + begin, *m = e.m + begin, *v = e.v + begin;
    const float *grad = e.grad + begin;
    int groups = e.aligned ? (len >> 2) : 0;
    for (int i = threadIdx.x; i < groups; i += blockDim.x) {
      adamw_four(param, grad, m, v, i, beta1, beta2, eps, gradScale, stepSize, wd);
    }
    for (int i = (groups << 2) + threadIdx.x; i < len; i += blockDim.x) {
      adamw_one(param[i], grad[i], m[i], v[i], beta1, beta2, eps, gradScale, stepSize, wd);
    }
  }
}

extern "C" __global__ void sgdm(float *param, const float *grad, float *momentum, int n, const int *step, double lr, double lrDecay, double lrScale,
                                double mu, double weightDecay, double gradScale) {
  double t = (double)step[0];
  double lrT = lr * lrScale * pow(2.0, -(t - 1.0) * lrDecay);
  double wd = lr * weightDecay;
  GRID_STRIDE(i, n) {
    double b = mu * (double)momentum[i] + gradScale * (double)grad[i];
    momentum[i] = (float)b;
    double p = (double)param[i];
    param[i] = (float)(p - wd * p - lrT * b);
  }
}

extern "C" __global__ void lamb_update(const float *param, const float *grad, float *m, float *v, float *update, int n, const int *step,
                                       double beta1, double beta2, double eps, double weightDecay, double gradScale) {
  double t = (double)step[0];
  double c1 = 1.0 - pow(beta1, t), c2 = 1.0 - pow(beta2, t);
  GRID_STRIDE(i, n) {
    double g = gradScale * (double)grad[i];
    double mi = beta1 * (double)m[i] + (1.0 - beta1) * g;
    double vi = beta2 * (double)v[i] + (1.0 - beta2) * g * g;
    m[i] = (float)mi;
    v[i] = (float)vi;
    update[i] = (float)(mi / c1 / (sqrt(vi / c2) + eps) + weightDecay * (double)param[i]);
  }
}

__device__ double warmup_linear_decay(double t, double lr, double warmupSteps, double totalSteps) {
  if (warmupSteps > 0.0 && t <= warmupSteps) return (lr * t) / warmupSteps;
  if (totalSteps <= warmupSteps) return lr;
  double remaining = (totalSteps - t) / (totalSteps - warmupSteps);
  return lr * (remaining > 0.0 ? remaining : 0.0);
}

extern "C" __global__ void lamb_apply(float *param, const float *update, const float *paramNormSq, const float *updateNormSq, int n,
                                      const int *step, double lr, double warmupSteps, double totalSteps, int useTrustRatio) {
  double t = (double)step[0];
  double wNorm = sqrt((double)paramNormSq[0]), uNorm = sqrt((double)updateNormSq[0]);
  double trust = useTrustRatio && wNorm > 0.0 && uNorm > 0.0 ? wNorm / uNorm : 1.0;
  double lrT = warmup_linear_decay(t, lr, warmupSteps, totalSteps) * trust;
  GRID_STRIDE(i, n) param[i] = (float)((double)param[i] - lrT * (double)update[i]);
}
`;

export const OPTIM_MODULE: KernelModuleSource = { name: 'optim', source: [PRELUDE, SOURCE].join('\n'), options: ['--fmad=false'] };
