/**
 * CPU twin of the row-wise nn kernels: the causal softmax against the −∞ mask-add form it
 * replaces (bit for bit), and layerNormGrad's accumulate flags against a write followed by an add.
 */
import { describe, expect, it } from 'vitest';
import type { Storage } from '../../src/backend/backend.ts';
import { CpuBackend } from '../../src/backend/cpu/index.ts';
import * as T from '../../src/tensor/index.ts';
import { values } from '../tensor/gradcheck.ts';

const backend = new CpuBackend();

function storage(data: Float32Array): Storage {
  const s = backend.alloc(data.length, 'f32');
  backend.write(s, data);
  return s;
}

function read(s: Storage): Float32Array {
  return backend.read(s) as Float32Array;
}

/** x with −∞ added where key c > query r mod s, as attention used to do before the softmax. */
function maskAdded(x: Float32Array, rows: number, s: number): Float32Array {
  const out = x.slice();
  for (let r = 0; r < rows; r++) for (let c = (r % s) + 1; c < s; c++) out[r * s + c] += Number.NEGATIVE_INFINITY;
  return out;
}

describe('causal softmax (CPU)', () => {
  const s = 7, matrices = 3, rows = s * matrices;
  const x = values(rows * s, 5, -4, 4);

  for (const log of [false, true]) {
    it(`${log ? 'log-' : ''}softmax kernel equals mask-add then softmax, bit for bit`, () => {
      const out = storage(new Float32Array(rows * s));
      backend.softmax(storage(x), out, rows, s, 0.8, 1.3, log, s);
      const causal = read(out);
      backend.softmax(storage(maskAdded(x, rows, s)), out, rows, s, 0.8, 1.3, log, 0);
      const reference = read(out);
      expect(Array.from(causal)).toEqual(Array.from(reference));
      for (let m = 0; m < matrices; m++) {
        const row0 = causal.subarray(m * s * s, m * s * s + s);
        // Query 0 sees key 0 alone: probability 1 (log 0), times outScale; the rest masked.
        expect(row0[0]).toBeCloseTo(log ? 0 : 1.3, 6);
        for (let c = 1; c < s; c++) expect(row0[c]).toBe(log ? Number.NEGATIVE_INFINITY : 0);
      }
    });
  }

  it('T.softmax / T.logSoftmax causal: same values and gradients as adding the mask', () => {
    T.tidy(() => {
      const mask = T.tensor(maskAdded(new Float32Array(s * s), s, s), [s, s]);
      const weights = T.tensor(values(rows * s, 6), [matrices, s, s]);
      for (const op of [T.softmax, T.logSoftmax]) {
        const run = (causal: boolean): { y: Float32Array; g: Float32Array } => {
          const input = T.tensor(x, [matrices, s, s]);
          input.requiresGrad = true;
          const y = causal ? op(input, { causal: true, inScale: 0.5, scale: 2 }) : op(T.add(input, mask), { inScale: 0.5, scale: 2 });
          // Log-probabilities of masked keys are −∞: weigh only the finite ones, as a loss would.
          const finite = T.tensor(y.toFloat32Array().map((v) => (Number.isFinite(v) ? 1 : 0)), [matrices, s, s]);
          T.backward(T.sum(T.mul(T.where(finite, y, 0), weights)));
          return { y: y.toFloat32Array(), g: input.grad!.toFloat32Array() };
        };
        const causal = run(true);
        const reference = run(false);
        expect(Array.from(causal.y)).toEqual(Array.from(reference.y));
        expect(Array.from(causal.g)).toEqual(Array.from(reference.g));
      }
    });
  });

  it('rejects non-square scores', () => {
    T.tidy(() => {
      expect(() => T.softmax(T.zeros([2, 3, 4]), { causal: true })).toThrow(/square/);
    });
  });
});

describe('layerNormGrad accumulate flags (CPU)', () => {
  const rows = 5, cols = 9;
  const x = storage(values(rows * cols, 11, -2, 2));
  const gy = storage(values(rows * cols, 12));
  const gamma = storage(values(cols, 13, 0.5, 1.5));
  const mean = storage(new Float32Array(rows)), rstd = storage(new Float32Array(rows));
  backend.layerNorm({ x, gamma, beta: null, out: storage(new Float32Array(rows * cols)), mean, rstd, rows, cols, eps: 1e-5 });

  type Buffers = { gx: Float32Array; gg: Float32Array; gb: Float32Array };
  function run(prior: Buffers, accumulateGradX: boolean, accumulateParams: boolean): Buffers {
    const gradX = storage(prior.gx), gradGamma = storage(prior.gg), gradBeta = storage(prior.gb);
    backend.layerNormGrad({
      x, gamma, mean, rstd, gradOut: gy, gradX, gradGamma, gradBeta,
      rows, cols, gradXScale: 0.5, gradGammaScale: 2, gradBetaScale: 3, accumulateGradX, accumulateParams,
    });
    return { gx: read(gradX), gg: read(gradGamma), gb: read(gradBeta) };
  }

  const prior = { gx: values(rows * cols, 14), gg: values(cols, 15), gb: values(cols, 16) };
  const written = run(prior, false, false);

  it('false writes, whatever the buffers held', () => {
    const fromZero = run({ gx: new Float32Array(rows * cols), gg: new Float32Array(cols), gb: new Float32Array(cols) }, false, false);
    expect(Array.from(written.gx)).toEqual(Array.from(fromZero.gx));
    expect(Array.from(written.gg)).toEqual(Array.from(fromZero.gg));
    expect(Array.from(written.gb)).toEqual(Array.from(fromZero.gb));
  });

  it('gradXAddend: with accumulateGradX, the prior gradient is read from it and gradX is only written', () => {
    const addend = values(rows * cols, 17);
    const gradX = storage(new Float32Array(rows * cols).fill(Number.NaN));
    backend.layerNormGrad({
      x, gamma, mean, rstd, gradOut: gy, gradX, gradGamma: null, gradBeta: null, rows, cols,
      gradXScale: 0.5, gradGammaScale: 2, gradBetaScale: 3, accumulateGradX: true, gradXAddend: storage(addend), accumulateParams: false,
    });
    const inPlace = run({ ...prior, gx: addend.slice() }, true, false);
    expect(Array.from(read(gradX))).toEqual(Array.from(inPlace.gx));
  });

  for (const [accX, accP] of [[true, false], [false, true], [true, true]] as const) {
    it(`accumulateGradX ${accX}, accumulateParams ${accP}: adds to the buffers it names`, () => {
      const out = run(prior, accX, accP);
      const expected = (name: 'gx' | 'gg' | 'gb', acc: boolean): number[] =>
        Array.from(written[name], (v, i) => (acc ? prior[name][i]! + v : v));
      for (const [name, acc] of [['gx', accX], ['gg', accP], ['gb', accP]] as const) {
        const want = expected(name, acc);
        // The sum is rounded once from float64 (not from the float32 written value): 1 ulp apart at most.
        out[name].forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(2e-7 * Math.max(1, Math.abs(want[i]!))));
      }
    });
  }
});
