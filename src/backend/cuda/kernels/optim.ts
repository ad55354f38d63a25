/**
 * Optimiser updates. The step counter t is read on the device (a captured step advances it
 * itself), and the per-step constants are computed by every thread in float64 exactly as the CPU
 * twin computes them; grid-stride loops keep that to once per thread.
 */
import type { KernelModuleSource } from '../modules.ts';
import { PRELUDE } from './prelude.ts';

const SOURCE = String.raw`
extern "C" __global__ void adamw(float *param, const float *grad, float *m, float *v, int n, const int *step, double lr, double lrDecay,
                                 double lrScale, double beta1, double beta2, double eps, double weightDecay, double gradScale) {
  double t = (double)step[0];
  double decay = pow(2.0, -(t - 1.0) * lrDecay);
  double stepSize = (lr * lrScale * decay * sqrt(1.0 - pow(beta2, t))) / (1.0 - pow(beta1, t));
  double wd = lr * weightDecay;
  GRID_STRIDE(i, n) {
    double g = gradScale * (double)grad[i];
    double mi = beta1 * (double)m[i] + (1.0 - beta1) * g;
    double vi = beta2 * (double)v[i] + (1.0 - beta2) * g * g;
    m[i] = (float)mi;
    v[i] = (float)vi;
    double p = (double)param[i];
    param[i] = (float)(p - wd * p - (stepSize * mi) / (sqrt(vi) + eps));
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
