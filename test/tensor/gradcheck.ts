import { expect } from 'vitest';
import { backward, noGrad, tensor, tidy, type Tensor, mul, sum } from '../../src/tensor/index.ts';

/** Deterministic pseudo-random values for test inputs. */
export function values(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = lo + ((s % 100000) / 100000) * (hi - lo);
  }
  return out;
}

export function param(data: Float32Array, shape: number[]): Tensor {
  const t = tensor(data, shape);
  t.requiresGrad = true;
  return t;
}

/**
 * Checks the engine's gradients of L = Σ w ⊙ f(inputs) (w fixed random weights) against central
 * differences. f runs in float32, so the step and tolerance are sized for that.
 */
export function gradcheck(
  shapes: number[][],
  f: (...inputs: Tensor[]) => Tensor,
  options: { seed?: number; eps?: number; tol?: number; lo?: number; hi?: number; inputs?: Float32Array[] } = {},
): void {
  const { seed = 1, eps = 1e-2, tol = 2e-2, lo = -1, hi = 1 } = options;
  const data = shapes.map((s, i) => options.inputs?.[i] ?? values(s.reduce((p, d) => p * d, 1), seed * 31 + i, lo, hi));
  tidy(() => {
    const inputs = data.map((d, i) => param(d, shapes[i]));
    const out = f(...inputs);
    const w = tensor(values(out.size, seed * 7 + 99), [...out.shape]);
    const loss = sum(mul(out, w));
    backward(loss);
    const weights = w.toFloat32Array();
    const evaluate = (perturbed: Float32Array[]): number =>
      noGrad(() =>
        tidy(() => {
          const o = f(...perturbed.map((d, i) => tensor(d, shapes[i]))).toFloat32Array();
          let total = 0;
          for (let i = 0; i < o.length; i++) total += o[i] * weights[i];
          return total;
        }),
      );
    inputs.forEach((input, k) => {
      const analytic = input.grad ? input.grad.toFloat32Array() : new Float32Array(input.size);
      const numeric = new Float64Array(input.size);
      for (let i = 0; i < input.size; i++) {
        const plus = data.map((d) => d.slice());
        const minus = data.map((d) => d.slice());
        plus[k][i] += eps;
        minus[k][i] -= eps;
        numeric[i] = (evaluate(plus) - evaluate(minus)) / (2 * eps);
      }
      let scale = 1e-3;
      for (let i = 0; i < numeric.length; i++) scale = Math.max(scale, Math.abs(numeric[i]));
      for (let i = 0; i < numeric.length; i++) {
        const err = Math.abs(analytic[i] - numeric[i]) / scale;
        if (err > tol) expect.fail(`input ${k} element ${i}: analytic ${analytic[i]} vs numeric ${numeric[i]} (rel err ${err.toFixed(4)})`);
      }
      input.grad?.dispose();
      input.grad = null;
    });
  });
}
