import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';

/** The reference path: a custom accumulate function turns every sink off. */
function referenceAccumulate(leaf: T.Tensor, g: T.Tensor): void {
  if (!leaf.grad) leaf.grad = T.persistent(() => T.zerosLike(leaf));
  T.addInPlace(leaf.grad!, g);
}

function seeded(shape: number[], seed: number): T.Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const data = Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * 0.5);
  const t = T.persistent(() => T.tensor(data, shape));
  t.requiresGrad = true;
  return t;
}

/** A small graph that reuses leaves and intermediates through every op with a sink path. */
function build() {
  const w = seeded([6, 4], 1);
  const bias = seeded([6], 2);
  const table = seeded([5, 4], 3);
  const shared = seeded([3, 4, 4], 4);
  const gain = seeded([6], 7);
  const shift = seeded([6], 8);
  const ids = T.persistent(() => T.tensor(Int32Array.from([0, 3, 3, 1, 4, 2]), [2, 3]));
  const leaves = [w, bias, table, shared, gain, shift];
  const loss = () => {
    const x = T.embedding(table, ids); // [2, 3, 4]
    const pre = T.add(T.matmul(x, w, { transB: true }), bias); // [2, 3, 6], bias broadcast
    const h = T.add(pre, T.tanh(T.layerNorm(pre, gain, shift, { gradScaleGamma: 0.5 }))); // residual: gradX accumulates into pre's gradient
    const again = T.matmul(T.tanh(h), w, { scale: 0.5 }); // w used twice: accumulate sink
    const parts = [0, 1, 2].map((i) => T.asStrided(h, [2, 3, 2], [18, 6, 1], 2 * i)); // three views of h
    const permuted = T.permute(T.add(parts[0], parts[1], { scaleB: 0.7 }), [1, 0, 2]); // [3, 2, 2]
    const sliced = T.slice(h, 2, 1, 4); // [2, 3, 3]
    const batched = T.matmul(T.reshape(again, [3, 2, 4]), shared, { gradScaleB: 2 }); // shared leaf, batched
    return T.add(
      T.add(T.sum(T.mul(batched, batched)), T.sum(T.mul(permuted, parts[2] && T.permute(parts[2], [1, 0, 2])))),
      T.sum(T.square(sliced)),
    );
  };
  return { leaves, loss };
}

function gradients(withSinks: boolean, steps: number): Float32Array[] {
  const { leaves, loss } = build();
  let out: Float32Array[] = [];
  for (let s = 0; s < steps; s++) {
    for (const l of leaves) l.zeroGrad();
    T.tidy(() => {
      const value = loss();
      if (withSinks) T.backward(value);
      else T.backward(value, undefined, referenceAccumulate);
    });
    out = leaves.map((l) => l.grad!.toFloat32Array());
    if (!withSinks) for (const l of leaves) l.grad!.backend.fill(l.grad!.storage, 0, l.grad!.size, 0);
  }
  return out;
}

/** A constant input of sines, [rows, cols]. */
function constant(size: number, step: number, shape: number[]): T.Tensor {
  return T.persistent(() => T.tensor(Float32Array.from({ length: size }, (_, i) => Math.sin(i * step)), shape));
}

/**
 * Runs `loss` backward on the reference path (sinks off) and with sinks, and expects the same
 * gradients of `leaves`. Returns, for the sinks run, the sizes of the backend's gemms calls and
 * how many add and copy kernels the backward pass launched.
 */
function expectSameGradients(leaves: T.Tensor[], loss: () => T.Tensor): { batches: number[]; adds: number; copies: number } {
  const backend = leaves[0]!.backend;
  const run = (withSinks: boolean): { values: Float32Array[]; batches: number[]; adds: number; copies: number } => {
    for (const w of leaves) w.zeroGrad();
    const originalBinary = backend.binary.bind(backend);
    const originalGemms = backend.gemms.bind(backend);
    const originalCopy = backend.copy.bind(backend);
    const originalUnary = backend.unary.bind(backend);
    const batches: number[] = [];
    let adds = 0;
    let copies = 0;
    let counting = false;
    backend.binary = (kind, ...rest) => {
      if (counting && kind === 'add') adds++;
      originalBinary(kind, ...rest);
    };
    backend.copy = (...args) => {
      if (counting) copies++;
      originalCopy(...args);
    };
    backend.unary = (kind, ...rest) => {
      if (counting && kind === 'copy') copies++;
      originalUnary(kind, ...rest);
    };
    backend.gemms = (params) => {
      if (counting) batches.push(params.length);
      originalGemms(params);
    };
    try {
      T.tidy(() => {
        const value = loss();
        counting = true;
        if (withSinks) T.backward(value);
        else T.backward(value, undefined, referenceAccumulate);
        counting = false;
      });
    } finally {
      backend.binary = originalBinary;
      backend.gemms = originalGemms;
      backend.copy = originalCopy;
      backend.unary = originalUnary;
    }
    const values = leaves.map((w) => w.grad!.toFloat32Array());
    if (!withSinks) for (const w of leaves) w.grad!.backend.fill(w.grad!.storage, 0, w.grad!.size, 0);
    return { values, batches, adds, copies };
  };
  const reference = run(false);
  const sunk = run(true);
  reference.values.forEach((r, i) => {
    for (let j = 0; j < r.length; j++) expect(sunk.values[i]![j]).toBeCloseTo(r[j]!, 5);
  });
  return { batches: sunk.batches, adds: sunk.adds, copies: sunk.copies };
}

describe('gradient sinks (ops writing straight into leaf and partial gradients)', () => {
  it('give the same gradients as fresh tensors merged by autograd, step after step', () => {
    const reference = gradients(false, 1);
    const sunk = gradients(true, 3);
    reference.forEach((r, i) => {
      const s = sunk[i]!;
      expect(s.length).toBe(r.length);
      for (let j = 0; j < r.length; j++) expect(s[j]).toBeCloseTo(r[j]!, 5);
    });
  });

  it('zeroGrad leaves stale values untouched until read, then reads as zeros', () => {
    const t = seeded([3], 5);
    T.tidy(() => T.backward(T.sum(T.mul(t, 2))));
    expect(Array.from(t.grad!.toFloat32Array())).toEqual([2, 2, 2]);
    t.zeroGrad();
    expect(Array.from(t.grad!.toFloat32Array())).toEqual([0, 0, 0]);
  });

  it('a weight reached only through a GEMM needs no fill or add kernel after zeroGrad', () => {
    const w = seeded([4, 4], 6);
    const x = T.persistent(() => T.ones([8, 4]));
    T.tidy(() => T.backward(T.sum(T.matmul(x, w))));
    w.zeroGrad();
    const backend = w.backend as unknown as Record<string, (...args: unknown[]) => unknown>;
    const calls: string[] = [];
    const wrapped = ['fill', 'binary', 'copy', 'gemm'].map((name) => {
      const original = backend[name]!;
      backend[name] = (...args: unknown[]) => {
        calls.push(name);
        return original.apply(w.backend, args);
      };
      return [name, original] as const;
    });
    try {
      T.tidy(() => T.backward(T.sum(T.matmul(x, w))));
    } finally {
      for (const [name, original] of wrapped) backend[name] = original;
    }
    expect(calls.filter((c) => c === 'gemm')).toHaveLength(2); // forward + weight gradient
    expect(calls.filter((c) => c === 'binary')).toHaveLength(0);
    expect(calls.filter((c) => c === 'fill')).toHaveLength(1); // the seed of backward(), not the gradient
    expect(Array.from(w.grad!.toFloat32Array())).toEqual(new Array(16).fill(8));
  });

  it('hands the weight-gradient products of a layer stack to the backend together at the end of the pass, same gradients', () => {
    const layers = [0, 1, 2, 3].map((i) => seeded([5, 5], 20 + i));
    const input = constant(30, 0.37, [6, 5]);
    // The first layer's weight is used twice (here and in the last layer): its second product must
    // not overwrite the first, which is still pending when the last layer's backward runs.
    const weights = [...layers, layers[0]!];
    const { batches } = expectSameGradients(layers, () => {
      let h = input;
      for (const w of weights) h = T.tanh(T.matmul(h, w));
      return T.sum(T.square(h));
    });
    // Four input gradients one by one as the pass goes down; the first layer's weight coming round
    // again runs the four pending weight gradients in one call before its own, which runs at the end.
    expect(batches).toEqual([1, 1, 1, 1, 4, 1]);
  });

  it('a deferred weight gradient reads its incoming gradient as it was, though a residual path later adds into the same storage', () => {
    // y = x + tanh(x)·w1: add's backward hands x and the branch one storage (aliases); w1's product
    // waits for the end of the pass while tanh's gradient of x is added to x's.
    const w0 = seeded([4, 4], 30);
    const w1 = seeded([4, 4], 31);
    const input = constant(12, 0.7, [3, 4]);
    expectSameGradients([w0, w1], () => {
      const x = T.tanh(T.matmul(input, w0));
      return T.sum(T.square(T.add(x, T.matmul(T.tanh(x), w1))));
    });
  });

  it('a layer norm adds the residual gradient a deferred product still reads in its own kernel, into a fresh buffer', () => {
    // y = x + LN(x)·w1: x's gradient so far (from the add) shares storage with the branch's, which
    // w1's deferred product reads; LN's gradient goes to a new buffer with it added (no add kernel).
    const w0 = seeded([4, 4], 32);
    const w1 = seeded([4, 4], 33);
    const input = constant(12, 0.9, [3, 4]);
    const { adds } = expectSameGradients([w0, w1], () => {
      const x = T.tanh(T.matmul(input, w0));
      return T.sum(T.square(T.add(x, T.matmul(T.layerNorm(x, null, null), w1))));
    });
    expect(adds).toBe(0);
  });

  it('scaled backward factors (a unit-scaled residual split) write into sinks: same gradients, no add kernel', () => {
    const w0 = seeded([4, 4], 34);
    const w1 = seeded([4, 4], 35);
    const input = constant(12, 1.3, [3, 4]);
    const { adds, copies } = expectSameGradients([w0, w1], () => {
      const x = T.tanh(T.matmul(input, w0));
      // residual_split: forward x twice, backward factors 0.6 and 0.8; residual_add with forward factors.
      const residual = T.scaleBwd(x, 0.6);
      const skip = T.scaleBwd(x, 0.8);
      const y = T.add(T.matmul(T.layerNorm(residual, null, null), w1), skip, { scaleA: 0.6, scaleB: 0.8, gradScaleA: 1, gradScaleB: 1 });
      return T.sum(T.square(y));
    });
    expect(adds).toBe(0);
    // The sum's broadcast gradient and the skip path's scaled copy: the branch's factor is applied
    // inside the layer norm's kernel, with no scaled copy of its own.
    expect(copies).toBe(2);
  });

  it('a layer norm of a backward-scaled alias gives its source the scaled gradient, nested factors multiplied', () => {
    const x = seeded([3, 4], 36);
    const upstream = constant(12, 0.7, [3, 4]);
    const gradientOf = (wrap: (t: T.Tensor) => T.Tensor, factor: number): number[] => {
      x.zeroGrad();
      T.tidy(() => T.backward(T.sum(T.mul(T.layerNorm(wrap(x), null, null), upstream))));
      return Array.from(x.grad!.toFloat32Array(), (v) => v * factor);
    };
    const plain = gradientOf((t) => t, 1);
    const folded = gradientOf((t) => T.scaleBwd(T.scaleBwd(t, 0.5), 0.6), 1 / 0.3);
    expect(plain.some((v) => Math.abs(v) > 1e-3)).toBe(true);
    folded.forEach((v, i) => expect(v).toBeCloseTo(plain[i]!, 5));
  });
});
