import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import * as nn from '../../src/nn/index.ts';
import { ReferenceGpt } from '../../src/models/gpt/model.ts';
import { gradcheck, param, values } from './gradcheck.ts';

const ADD: T.AddOptions = { scaleA: 0.6, scaleB: 0.8, gradScaleA: 1, gradScaleB: 0.5 };
const NORM: T.LayerNormOptions = { eps: 1e-5, gradScaleGamma: 2, gradScaleBeta: 3, gradScaleX: 0.7 };

/** Counts the calls of the named backend methods (kind-qualified for unary/binary) while fn runs. */
function countingKernels<R>(backend: T.Tensor['backend'], fn: () => R): { result: R; kernels: string[] } {
  const kernels: string[] = [];
  const b = backend as unknown as Record<string, (...args: unknown[]) => unknown>;
  const names = ['binary', 'unary', 'copy', 'layerNorm', 'layerNormGrad'];
  const originals = names.map((n) => b[n]!);
  names.forEach((n, i) => {
    b[n] = (...args: unknown[]) => {
      kernels.push(typeof args[0] === 'string' ? `${n}:${args[0]}` : n);
      return originals[i]!.apply(backend, args);
    };
  });
  try {
    return { result: fn(), kernels };
  } finally {
    names.forEach((n, i) => (b[n] = originals[i]!));
  }
}

/**
 * Loss over both results (the stream goes on, the norm feeds a branch), every gradient, and the
 * kernels of the fused or unfused pair forward and backward. a and b are intermediates (tanh of
 * leaves): a's gradient is then an alias, and b's, scaled, needs a kernel of its own when unfused.
 */
function run(fused: boolean) {
  return T.tidy(() => {
    const leaves = [param(values(24, 1), [2, 3, 4]), param(values(24, 2), [2, 3, 4]), param(values(4, 3, 0.5, 1.5), [4]), param(values(4, 4), [4])];
    const [aLeaf, bLeaf, gamma, beta] = leaves as [T.Tensor, T.Tensor, T.Tensor, T.Tensor];
    const [a, b] = [T.tanh(aLeaf), T.tanh(bLeaf)];
    const forward = countingKernels(a.backend, () => {
      if (fused) return T.addLayerNorm(a, b, ADD, gamma, beta, NORM);
      const sum = T.add(a, b, ADD);
      return { sum, normed: T.layerNorm(sum, gamma, beta, NORM) };
    });
    const { sum, normed } = forward.result;
    const weights = T.tensor(values(24, 5), [2, 3, 4]);
    const loss = T.add(T.sum(T.mul(normed, weights)), T.sum(T.square(sum)));
    const backward = countingKernels(a.backend, () => T.backward(loss));
    return {
      sum: Array.from(sum.toFloat32Array()),
      normed: Array.from(normed.toFloat32Array()),
      grads: leaves.map((l) => Array.from(l.grad!.toFloat32Array())),
      forwardKernels: forward.kernels,
      scaledCopies: backward.kernels.filter((k) => k === 'unary:copy').length,
    };
  });
}

describe('addLayerNorm: a residual add inside the layer norm kernel', () => {
  it('gives the values and gradients of add then layerNorm, bit for bit on the CPU, in one kernel', () => {
    const fused = run(true);
    const unfused = run(false);
    expect(fused.forwardKernels).toEqual(['layerNorm']);
    expect(unfused.forwardKernels).toEqual(['binary:add', 'layerNorm']);
    // b's gradient, 0.5 times the sum's: a scaled copy unfused, written by the norm's backward kernel fused.
    expect(unfused.scaledCopies).toBe(1);
    expect(fused.scaledCopies).toBe(0);
    expect(fused.sum).toEqual(unfused.sum);
    expect(fused.normed).toEqual(unfused.normed);
    expect(fused.grads).toEqual(unfused.grads);
  });

  it('has the true gradient when no factor overrides it', () => {
    gradcheck([[3, 5], [3, 5], [5], [5]], (a, b, g, beta) => {
      const { sum, normed } = T.addLayerNorm(a!, b!, { scaleA: 0.5, scaleB: 1.5 }, g!, beta!, { eps: 1e-3 });
      return T.add(normed, T.scale(sum, 0.3));
    }, { lo: -2, hi: 2 });
  });

  it('refuses operands of different shapes', () => {
    T.tidy(() => {
      expect(() => T.addLayerNorm(T.zeros([2, 4]), T.zeros([1, 4]), {}, null, null)).toThrow(/differ in shape/);
    });
  });

  it('the reference GPT model gives the same loss and gradients with its residual adds fused or not', () => {
    for (const scaling of [nn.REGULAR, nn.unitScaling('umup')]) {
      const lossAndGradients = (fuseResidualNorms: boolean) =>
        T.tidy(() => {
          const precision = nn.precisionPolicy({ mode: 'fp32', fp8_family: 'paper', rounding: 'nearest', master_weights: false, matmul: 'native', allow_tf32: false });
          const model = new ReferenceGpt({ vocab: 11, hidden: 8, depth: 2, heads: 2, sequenceLength: 5, scaling, precision, seed: 4, fuseResidualNorms });
          const ids = T.tensor(Int32Array.from({ length: 10 }, (_, i) => (i * 7) % 11), [2, 5]);
          const loss = model.loss(ids, ids);
          T.backward(loss);
          const result = [Array.from(loss.toFloat32Array()), ...model.parameters.map((p) => Array.from(p.tensor.grad!.toFloat32Array()))];
          model.dispose();
          return result;
        });
      expect(lossAndGradients(true), scaling.mode).toEqual(lossAndGradients(false));
    }
  });
});
