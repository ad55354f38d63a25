import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import { gradcheck, values } from './gradcheck.ts';

const ids = (data: number[], shape: number[]) => T.tensor(Int32Array.from(data), shape);

describe('finite-difference gradients of every op', () => {
  it('add / sub / mul / div with broadcasting', () => {
    gradcheck([[2, 3], [3]], (a, b) => T.add(a, b));
    gradcheck([[2, 1, 3], [4, 1]], (a, b) => T.add(a, b, { scaleA: 0.5, scaleB: -2 }));
    gradcheck([[2, 3], [2, 1]], (a, b) => T.sub(a, b));
    gradcheck([[3, 1], [1, 4]], (a, b) => T.mul(a, b));
    gradcheck([[2, 3], [3]], (a, b) => T.div(a, b), { lo: 0.5, hi: 2 });
    gradcheck([[2, 3]], (a) => T.mul(a, 3));
  });

  it('unary functions, with input and output scales', () => {
    gradcheck([[7]], (x) => T.neg(x));
    gradcheck([[7]], (x) => T.scale(x, 2.5));
    gradcheck([[7]], (x) => T.exp(x));
    gradcheck([[7]], (x) => T.log(x), { lo: 0.5, hi: 3 });
    gradcheck([[7]], (x) => T.sqrt(x), { lo: 0.5, hi: 3 });
    gradcheck([[7]], (x) => T.rsqrt(x), { lo: 0.5, hi: 3 });
    gradcheck([[7]], (x) => T.tanh(x, { inScale: 1.5, scale: 0.7 }));
    gradcheck([[7]], (x) => T.sigmoid(x));
    gradcheck([[7]], (x) => T.relu(x), { inputs: [Float32Array.from([-1, -0.5, 0.3, 0.8, 1.2, -2, 2])] });
    gradcheck([[9]], (x) => T.gelu(x, { inScale: 1.3, scale: 1.5 }), { lo: -3, hi: 3 });
    gradcheck([[9]], (x) => T.gelu(x, { approximate: 'tanh' }), { lo: -3, hi: 3 });
  });

  it('where and masks', () => {
    const cond = T.tensor([1, 0, 1, 0, 0, 1], [2, 3]);
    gradcheck([[2, 3], [3]], (a, b) => T.where(cond, a, b));
  });

  it('sum / mean / max over axes', () => {
    gradcheck([[2, 3, 4]], (x) => T.sum(x, 1));
    gradcheck([[2, 3, 4]], (x) => T.sum(x, [0, 2], true));
    gradcheck([[2, 3, 4]], (x) => T.mean(x, -1));
    gradcheck([[2, 3, 4]], (x) => T.mean(x));
    gradcheck([[3, 5]], (x) => T.max(x, 1));
  });

  it('reshape / transpose / permute / slice / concat / pad / broadcastTo', () => {
    gradcheck([[2, 6]], (x) => T.reshape(x, [3, -1]));
    gradcheck([[2, 3, 4]], (x) => T.transpose(x));
    gradcheck([[2, 3, 4]], (x) => T.permute(x, [2, 0, 1]));
    gradcheck([[4, 5]], (x) => T.slice(x, 1, 1, 4));
    gradcheck([[2, 3], [2, 2]], (a, b) => T.concat([a, b], 1));
    gradcheck([[2, 3]], (x) => T.pad(x, [1, 0], [0, 2]));
    gradcheck([[3, 1]], (x) => T.broadcastTo(x, [2, 3, 4]));
    gradcheck([[10]], (x) => T.asStrided(x, [4, 3], [2, 1]));
  });

  it('matmul: every transpose combination, batched and shared operands', () => {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = transA ? [4, 3] : [3, 4];
        const b = transB ? [5, 4] : [4, 5];
        gradcheck([a, b], (x, y) => T.matmul(x, y, { transA, transB, scale: 0.5 }));
        gradcheck([[2, ...a], [2, ...b]], (x, y) => T.matmul(x, y, { transA, transB }));
        gradcheck([[2, ...a], b], (x, y) => T.matmul(x, y, { transA, transB }));
        gradcheck([a, [2, ...b]], (x, y) => T.matmul(x, y, { transA, transB }));
      }
    }
  });

  it('softmax and log-softmax with scales', () => {
    gradcheck([[3, 5]], (x) => T.softmax(x));
    gradcheck([[3, 5]], (x) => T.softmax(x, { inScale: 2, scale: 3 }));
    gradcheck([[3, 5]], (x) => T.logSoftmax(x));
  });

  it('layer norm with and without affine parameters', () => {
    gradcheck([[3, 6], [6], [6]], (x, g, b) => T.layerNorm(x, g, b, { eps: 1e-3 }), { lo: -2, hi: 2 });
    gradcheck([[3, 6]], (x) => T.layerNorm(x, null, null));
  });

  it('embedding gather / scatter-add', () => {
    const idx = ids([0, 2, 2, 1, 3], [5]);
    gradcheck([[4, 3]], (table) => T.embedding(table, idx));
  });

  it('grouped causal conv1d', () => {
    gradcheck([[2, 5, 4], [3, 2, 6]], (x, w) => T.conv1dCausal(x, w, { groups: 2 }));
    gradcheck([[1, 3, 2], [4, 2, 2]], (x, w) => T.conv1dCausal(x, w, { groups: 1, scale: 0.5 }));
  });

  it('masked cross-entropy', () => {
    const labels = ids([1, 0, 3], [3]);
    const mask = T.tensor([1, 0, 1], [3]);
    gradcheck([[3, 4]], (x) => T.crossEntropy(x, labels, mask));
    gradcheck([[3, 4]], (x) => T.crossEntropy(x, labels, null));
    gradcheck([[3, 4]], (x) => T.reshape(T.crossEntropyRows(x, labels, mask), [3]));
  });

  it('dropout (fixed mask within one call)', () => {
    T.tidy(() => {
      const x = T.tensor(values(1000, 3), [1000]);
      x.requiresGrad = true;
      const y = T.dropout(x, 0.3);
      T.backward(T.sum(y));
      const out = y.toFloat32Array();
      const g = x.grad!.toFloat32Array();
      const xs = x.toFloat32Array();
      let kept = 0;
      for (let i = 0; i < 1000; i++) {
        if (out[i] !== 0) {
          kept++;
          expect(out[i]).toBeCloseTo(xs[i] / 0.7, 5);
          expect(g[i]).toBeCloseTo(1 / 0.7, 5);
        } else expect(g[i]).toBe(0);
      }
      expect(kept).toBeGreaterThan(620);
      expect(kept).toBeLessThan(780);
      x.grad = null;
    });
  });

  it('scaled(): forward and backward factors are independent and exact', () => {
    T.tidy(() => {
      const x = T.tensor([1, -2, 3], [3]);
      x.requiresGrad = true;
      const y = T.scaled(x, 2, 3);
      expect(Array.from(y.toArray())).toEqual([2, -4, 6]);
      T.backward(T.sum(y));
      expect(Array.from(x.grad!.toArray())).toEqual([3, 3, 3]);
      x.grad = null;
    });
  });

  it('the checker itself rejects a wrong gradient', () => {
    expect(() => gradcheck([[4]], (x) => T.customGradient([x], () => T.square(x), (g) => [T.mul(g, x)]))).toThrow(/analytic/);
  });

  it('custom gradient hook', () => {
    T.tidy(() => {
      const x = T.tensor([1, 2], [2]);
      x.requiresGrad = true;
      const y = T.customGradient([x], () => T.square(x), (g) => [T.scale(g, 10)]);
      T.backward(T.sum(y));
      expect(Array.from(y.toArray())).toEqual([1, 4]);
      expect(Array.from(x.grad!.toArray())).toEqual([10, 10]);
      x.grad = null;
    });
  });

  it('gradients accumulate into parameters used twice, and across backward calls', () => {
    const p = T.persistent(() => T.tensor([1, 2, 3], [3]));
    p.requiresGrad = true;
    for (let step = 0; step < 2; step++) {
      T.tidy(() => {
        T.backward(T.sum(T.add(T.mul(p, p), p)));
      });
    }
    expect(Array.from(p.grad!.toArray())).toEqual([6, 10, 14]);
  });
});

describe('shape errors name the op and the shapes', () => {
  it('matmul', () => {
    expect(() => T.tidy(() => T.matmul(T.zeros([2, 3]), T.zeros([4, 5])))).toThrow(/matmul: shapes \[2, 3\] and \[4, 5\]/);
  });
  it('broadcast', () => {
    expect(() => T.tidy(() => T.add(T.zeros([2, 3]), T.zeros([4])))).toThrow(/add: shapes \[2, 3\] and \[4\] do not broadcast/);
  });
});

describe('lifetimes', () => {
  it('a scope releases what it made; a steady-state step allocates nothing new', () => {
    const backend = T.cpuBackend();
    const w = T.persistent(() => T.tensor(values(64, 1), [8, 8]));
    w.requiresGrad = true;
    const step = () =>
      T.tidy(() => {
        const x = T.tensor(values(32, 2), [4, 8]);
        T.backward(T.sum(T.gelu(T.matmul(x, w))));
      });
    step();
    const before = backend.memoryStats();
    step();
    step();
    const after = backend.memoryStats();
    expect(after.allocatedBytes).toBe(before.allocatedBytes);
    expect(after.reservedBytes).toBe(before.reservedBytes);
  });
});
