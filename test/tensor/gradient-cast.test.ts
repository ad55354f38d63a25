import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import { parseFormat } from '../../src/formats/registry.ts';

const FP16: T.CastSpec = { format: parseFormat('fp16'), rounding: 'nearest', overflow: 'inf' };
const FP16_SR: T.CastSpec = { ...FP16, rounding: 'stochastic' };

function leaf(values: number[], shape: number[]): T.Tensor {
  const t = T.persistent(() => T.tensor(values, shape));
  t.requiresGrad = true;
  return t;
}

/** Values whose float32 sums are not on the FP16 grid. */
const X = [0.1, -0.37, 1 + 2 ** -12, 3.3, 0.5, -2.2];
const UPSTREAM = [1.7, -0.3, 2.9, 1 + 2 ** -13];

/** w [2, 3] used `uses` times as x·wᵀ; returns w's gradient. `cast` chooses how it is rounded. */
function weightGradient(cast: 'leaf' | 'op' | 'none', uses = 1, spec: T.CastSpec = FP16): number[] {
  const w = leaf([0.3, -1.1, 0.7, 2.5, 0.2, -0.9], [2, 3]);
  if (cast === 'leaf') T.castGradient(w, spec);
  T.tidy(() => {
    const x = T.tensor(X, [2, 3]);
    let loss = T.zeros([]);
    for (let u = 0; u < uses; u++) {
      const used = cast === 'op' ? T.quantise(w, null, spec) : w;
      loss = T.add(loss, T.sum(T.mul(T.matmul(x, used, { transB: true, scale: 1 + u }), T.tensor(UPSTREAM, [2, 2]))));
    }
    T.backward(loss);
  });
  const g = Array.from(w.grad!.toFloat32Array());
  w.grad!.dispose();
  w.dispose();
  return g;
}

function fp16(values: number[]): number[] {
  return T.tidy(() => {
    const t = T.tensor(values, [values.length]);
    T.quantiseInPlace(t, FP16);
    return Array.from(t.toFloat32Array());
  });
}

describe('castGradient: a leaf gradient rounded once its backward pass has summed it', () => {
  it('equals a backward cast at the leaf`s one use, bit for bit (nearest)', () => {
    const plain = weightGradient('none');
    const cast = weightGradient('leaf');
    expect(cast).toEqual(weightGradient('op'));
    expect(cast).toEqual(fp16(plain));
    expect(cast).not.toEqual(plain);
  });

  it('rounds the sum of several uses once', () => {
    expect(weightGradient('leaf', 2)).toEqual(fp16(weightGradient('none', 2)));
  });

  it('adds the rounded gradient of this pass to what an earlier pass left (no zeroGrad between)', () => {
    // Reference: the op form casts each pass's contribution before it is accumulated.
    const w = leaf([0.3, -1.1, 0.7, 2.5, 0.2, -0.9], [2, 3]);
    const reference = leaf([0.3, -1.1, 0.7, 2.5, 0.2, -0.9], [2, 3]);
    const raw = leaf([0.3, -1.1, 0.7, 2.5, 0.2, -0.9], [2, 3]);
    T.castGradient(w, FP16);
    const pass = (scale: number) =>
      T.tidy(() => {
        const loss = (used: T.Tensor) => T.sum(T.mul(T.matmul(T.tensor(X, [2, 3]), used, { transB: true, scale }), T.tensor(UPSTREAM, [2, 2])));
        T.backward(T.add(T.add(loss(w), loss(T.quantise(reference, null, FP16))), loss(raw)));
      });
    pass(1);
    pass(3.3);
    const result = Array.from(w.grad!.toFloat32Array());
    expect(result).toEqual(Array.from(reference.grad!.toFloat32Array()));
    // Rounding the accumulated sum instead would give other values.
    expect(result).not.toEqual(fp16(Array.from(raw.grad!.toFloat32Array())));
    for (const t of [w, reference, raw]) {
      t.grad!.dispose();
      t.dispose();
    }
  });

  it('stochastic rounding lands on the FP16 grid and follows the random context', () => {
    T.setRandomContext(new T.RandomContext(11));
    const a = weightGradient('leaf', 1, FP16_SR);
    T.setRandomContext(new T.RandomContext(11));
    const b = weightGradient('leaf', 1, FP16_SR);
    expect(a).toEqual(b);
    expect(a).toEqual(fp16(a));
    T.setRandomContext(new T.RandomContext(1));
  });

  it('leaves the weight-gradient product writing straight into the gradient: no extra copy, one rounding launch', () => {
    // The same graph with and without the casts: the casts add one quantiseMany call, nothing else.
    const count = (withCasts: boolean) => {
      const w = leaf([0.3, -1.1, 0.7, 2.5, 0.2, -0.9], [2, 3]);
      const v = leaf([1, 2, 3, 4, 5, 6], [2, 3]);
      if (withCasts) for (const t of [w, v]) T.castGradient(t, FP16);
      const backend = w.backend;
      const calls = { copies: 0, quantise: 0, quantiseMany: 0, tensorsRounded: 0 };
      const original = { copy: backend.copy, quantise: backend.quantise, quantiseMany: backend.quantiseMany, unary: backend.unary };
      let insideMany = false;
      backend.copy = (...args) => {
        calls.copies++;
        return original.copy.apply(backend, args);
      };
      backend.unary = (kind, ...rest) => {
        if (kind === 'copy') calls.copies++;
        return original.unary.call(backend, kind, ...rest);
      };
      backend.quantise = (...args) => {
        if (!insideMany) calls.quantise++;
        return original.quantise.apply(backend, args);
      };
      backend.quantiseMany = (tensors, ...rest) => {
        calls.quantiseMany++;
        calls.tensorsRounded += tensors.length;
        insideMany = true;
        try {
          return original.quantiseMany.call(backend, tensors, ...rest);
        } finally {
          insideMany = false;
        }
      };
      try {
        for (const t of [w, v]) t.zeroGrad();
        T.tidy(() => {
          const h = T.matmul(T.tensor(X, [2, 3]), w, { transB: true });
          T.backward(T.sum(T.mul(T.matmul(h, v), T.tensor([1, 2, 3, 4, 5, 6], [2, 3]))));
        });
      } finally {
        Object.assign(backend, original);
      }
      for (const t of [w, v]) {
        t.grad!.dispose();
        t.dispose();
      }
      return calls;
    };
    const plain = count(false);
    expect(count(true)).toEqual({ ...plain, quantiseMany: 1, tensorsRounded: 2 });
    expect(plain.quantiseMany).toBe(0);
  });
});

describe('quantiseManyInPlace', () => {
  it('equals quantiseInPlace on each tensor in order, random streams included', () => {
    const values = (k: number) => Array.from({ length: 37 }, (_, i) => Math.sin(i * 1.7 + k) * 3.1);
    const run = (many: boolean) => {
      T.setRandomContext(new T.RandomContext(5));
      return T.tidy(() => {
        const tensors = [0, 1, 2].map((k) => T.tensor(values(k), [37]));
        if (many) T.quantiseManyInPlace(tensors, FP16_SR);
        else for (const t of tensors) T.quantiseInPlace(t, FP16_SR);
        return tensors.map((t) => Array.from(t.toFloat32Array()));
      });
    };
    const many = run(true);
    expect(many).toEqual(run(false));
    expect(many[0]).not.toEqual(values(0).map(Math.fround));
    T.setRandomContext(new T.RandomContext(1));
  });
});
