/**
 * The multi-tensor AdamW kernel against the per-tensor one on the CPU twin: the same float64 math
 * per tensor, so the results must match bit for bit.
 */
import { describe, expect, it } from 'vitest';
import type { AdamWMultiTensor, Storage } from '../../src/backend/backend.ts';
import { CpuBackend } from '../../src/backend/cpu/index.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import type { ModelParameter } from '../../src/models/types.ts';
import { AdamW, ensureGradients } from '../../src/optim/index.ts';
import * as T from '../../src/tensor/index.ts';
import { values as randomValues } from '../tensor/gradcheck.ts';
import { parameter, setGradient, values } from './helpers.ts';

const FP16_SR: T.CastSpec = { format: parseFormat('fp16'), rounding: 'stochastic', overflow: 'inf' };
const SIZES = [1, 3, 5, 1000, 4097];
const SETTINGS = { lr: 1e-3, lrDecay: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, gradScale: 0.5 };

interface HostTensor {
  readonly n: number;
  readonly lrScale: number;
  readonly weightDecay: number;
  readonly param: Float32Array;
  readonly grad: Float32Array;
  readonly m: Float32Array;
  readonly v: Float32Array;
}

function hostTensors(): HostTensor[] {
  return SIZES.map((n, i) => ({
    n,
    lrScale: [1, 0.5, 1 / Math.sqrt(1000), 2, 0.125][i]!,
    weightDecay: [0.01, 0, 0.1, 0, 1e-4][i]!,
    param: randomValues(n, 11 + i, -1, 1),
    grad: randomValues(n, 21 + i, -0.1, 0.1),
    m: randomValues(n, 31 + i, -0.01, 0.01),
    v: randomValues(n, 41 + i, 1e-6, 1e-3), // second moments are positive
  }));
}

/** Uploads the tensors, runs `update` for steps t = 7 and 8, and reads back param, m and v. */
function run(update: (b: CpuBackend, step: Storage, tensors: AdamWMultiTensor[]) => void): Float32Array[][] {
  const b = new CpuBackend();
  const upload = (data: Float32Array): Storage => {
    const s = b.alloc(data.length, 'f32');
    b.write(s, data);
    return s;
  };
  const tensors = hostTensors().map((t) => ({
    param: upload(t.param), grad: upload(t.grad), m: upload(t.m), v: upload(t.v), n: t.n, lrScale: t.lrScale, weightDecay: t.weightDecay,
  }));
  const step = b.alloc(1, 'i32');
  b.write(step, new Int32Array([7]));
  for (let k = 0; k < 2; k++) {
    update(b, step, tensors);
    b.increment(step);
  }
  return tensors.map((t) => [t.param, t.m, t.v].map((s) => b.read(s) as Float32Array));
}

function bits(x: Float32Array): number[] {
  return Array.from(new Int32Array(x.buffer, x.byteOffset, x.length));
}

describe('adamwMulti (CPU)', () => {
  it('equals adamw once per tensor, bit for bit, with mixed lrScale and weight decay', () => {
    const multi = run((b, step, tensors) => b.adamwMulti({ ...SETTINGS, step, tensors }));
    const single = run((b, step, tensors) => {
      for (const t of tensors) b.adamw({ ...SETTINGS, ...t, step });
    });
    const start = hostTensors();
    multi.forEach((arrays, i) => {
      arrays.forEach((a, k) => expect(bits(a), `tensor ${i} (n=${SIZES[i]}) output ${k}`).toEqual(bits(single[i]![k]!)));
      // The update did something: guards against both paths doing nothing.
      expect(bits(arrays[0]!)).not.toEqual(bits(start[i]!.param));
    });
  });

  it('refuses tensors that share a storage', () => {
    const b = new CpuBackend();
    const s = (n: number): Storage => b.alloc(n, 'f32');
    const step = b.alloc(1, 'i32');
    const shared = s(4);
    const tensors = [0, 1].map(() => ({ param: shared, grad: s(4), m: s(4), v: s(4), n: 4, lrScale: 1, weightDecay: 0 }));
    expect(() => b.adamwMulti({ ...SETTINGS, step, tensors })).toThrow(/share a storage/);
  });

  it('AdamW with low-precision weights matches per-parameter update-then-round, random streams included', () => {
    const settings = { lr: 0.01, lrDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-7, weightDecay: 0.01 };
    const grads = [[0.3, -0.1, 0.02, 0.5], [-0.2, 0.4, 0.01, -0.7]];
    const make = (): ModelParameter[] => [parameter('a', [1.001, -0.3337, 2.5], { lrScale: 0.5 }), parameter('c', [0.1234567], { weightDecay: false })];
    const feed = (ps: ModelParameter[], g: number[]): void => {
      setGradient(ps[0]!, g.slice(0, 3));
      setGradient(ps[1]!, g.slice(3));
    };

    T.setRandomContext(new T.RandomContext(7));
    const joint = make();
    const opt = new AdamW(joint, settings, FP16_SR);
    for (const g of grads) {
      feed(joint, g);
      opt.step(1);
    }

    // What AdamW.step did before adamwMulti: update, round m, round the weights, parameter by parameter.
    T.setRandomContext(new T.RandomContext(7));
    const alone = make();
    ensureGradients(alone);
    const m = alone.map((p) => T.persistent(() => T.zerosLike(p.tensor)));
    const v = alone.map((p) => T.persistent(() => T.zerosLike(p.tensor)));
    const step = T.persistent(() => T.zeros([1], 'i32'));
    for (const g of grads) {
      feed(alone, g);
      step.backend.increment(step.storage);
      alone.forEach((p, i) => {
        p.tensor.backend.adamw({
          param: p.tensor.storage, grad: p.tensor.grad!.storage, m: m[i]!.storage, v: v[i]!.storage, n: p.tensor.size, step: step.storage,
          lr: settings.lr, lrDecay: 0, lrScale: p.lrScale, beta1: settings.beta1, beta2: settings.beta2, eps: settings.eps,
          weightDecay: p.weightDecay ? settings.weightDecay : 0, gradScale: 1,
        });
        T.quantiseInPlace(m[i]!, FP16_SR);
        T.quantiseInPlace(p.tensor, FP16_SR);
      });
    }

    const state = opt.stateTensors();
    alone.forEach((p, i) => {
      expect(values(joint[i]!), p.name).toEqual(values(p));
      expect(Array.from(state.get(`adamw.m.${p.name}`)!.toFloat32Array())).toEqual(Array.from(m[i]!.toFloat32Array()));
      expect(Array.from(state.get(`adamw.v.${p.name}`)!.toFloat32Array())).toEqual(Array.from(v[i]!.toFloat32Array()));
    });
  });
});
