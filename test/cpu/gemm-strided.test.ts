/**
 * The CPU twin of gemmStrided (src/backend/cpu/gemm-strided.ts) against a naive float64 triple
 * loop: two batch levels whose strides do not merge, every transpose, alpha/beta (beta = 0 over
 * NaN), the causal modes, and the shape errors of checkStridedGemm. A float32 accumulation of k
 * terms is within about (k + 2)·2^-24 of Σ|a·b| (+|β·c|) of the exact value.
 */
import { describe, expect, it } from 'vitest';
import type { Storage, StridedGemmParams } from '../../src/backend/backend.ts';
import { CpuBackend } from '../../src/backend/cpu/index.ts';
import { bind, expectMatches, keepPromise, paddedProblem, reference, type Problem, type Shape } from '../gemm-strided-cases.ts';

const cpu = new CpuBackend();
const TRANSPOSES = [[false, false], [true, false], [false, true], [true, true]] as const;

/** Runs the problem on the CPU backend and returns its C buffer. */
function run(problem: Problem, edit?: (p: StridedGemmParams) => StridedGemmParams): Float32Array {
  const storages: Record<string, Storage> = {};
  for (const [name, data] of Object.entries(problem.buffers)) {
    storages[name] = cpu.alloc(data.length, 'f32');
    cpu.write(storages[name]!, data);
  }
  const params = bind(problem, storages);
  cpu.gemmStrided(edit ? edit(params) : params);
  return cpu.read(storages[problem.c.buffer]!) as Float32Array;
}

function check(problem: Problem, label: string): Float32Array {
  const got = run(problem);
  expectMatches(problem, reference(problem), got, null, (problem.shape.k + 3) * 2 ** -24, label);
  return got;
}

const plain: Omit<Shape, 'transA' | 'transB' | 'm' | 'n' | 'k'> = { alpha: 0.7, beta: 0.5, batch: [2, 3], causal: 'none' };
const layout = { pad: 2, offset: 3, gap: 5 };

describe('gemmStrided on the CPU', () => {
  it('matches the triple loop over two unmergeable batch levels, every transpose and odd sizes', () => {
    let seed = 1;
    for (const [transA, transB] of TRANSPOSES) {
      for (const [m, n, k] of [[1, 1, 1], [5, 17, 33], [33, 5, 17], [17, 33, 5], [20, 20, 0]]) {
        check(paddedProblem({ ...plain, transA, transB, m: m!, n: n!, k: k! }, { ...layout, seed: seed++ }), `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} ${m}×${n}×${k}`);
      }
    }
  });

  it('beta 0 overwrites NaN in C; alpha 0 gives beta·C without reading NaN in A and B', () => {
    const shape: Shape = { ...plain, transA: false, transB: true, m: 9, n: 13, k: 11 };
    // expectMatches fails on NaN anywhere in C.
    check(paddedProblem({ ...shape, beta: 0 }, { ...layout, seed: 10, nanC: true }), 'beta 0');
    const problem = paddedProblem({ ...shape, alpha: 0 }, { ...layout, seed: 11 });
    const c = problem.buffers.c!.slice();
    problem.buffers.a!.fill(Number.NaN);
    problem.buffers.b!.fill(Number.NaN);
    const got = run(problem);
    const ref = reference({ ...problem, buffers: { ...problem.buffers, a: new Float32Array(problem.buffers.a!.length), b: new Float32Array(problem.buffers.b!.length), c } });
    expectMatches(problem, ref, got, null, 2 ** -24, 'alpha 0');
  });

  it("'lower-output' stores exact zeros above the diagonal, even over NaN with beta ≠ 0", () => {
    for (const [transA, transB] of TRANSPOSES) {
      const problem = paddedProblem({ ...plain, transA, transB, m: 19, n: 19, k: 7, causal: 'lower-output' }, { ...layout, seed: 20 });
      const c = problem.buffers.c!;
      const ref = reference(problem);
      for (const index of ref.zeros) c[index] = Number.NaN;
      expectMatches(problem, ref, run(problem), null, 10 * 2 ** -24, `lower-output ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`);
      expect(ref.zeros.size).toBe(6 * ((19 * 18) / 2));
    }
  });

  it("'k-to-row' and 'k-from-row' products of a triangular op(A) equal the full product", () => {
    for (const causal of ['k-to-row', 'k-from-row'] as const) {
      for (const [transA, transB] of TRANSPOSES) {
        const problem = paddedProblem({ ...plain, transA, transB, m: 21, n: 6, k: 21, causal }, { ...layout, seed: 30 });
        keepPromise(problem);
        check(problem, `${causal} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`);
      }
    }
  });

  it('rejects non-square causal products, negative strides and offsets, and views past the storage', () => {
    const problem = paddedProblem({ ...plain, transA: false, transB: false, m: 6, n: 5, k: 4 }, { ...layout, seed: 40 });
    const fails = (edit: (p: StridedGemmParams) => StridedGemmParams, pattern: RegExp | typeof RangeError) => expect(() => run(problem, edit)).toThrow(pattern);
    fails((p) => ({ ...p, causal: 'lower-output' }), /lower-output' needs a square product/);
    fails((p) => ({ ...p, causal: 'k-to-row' }), /k-to-row' needs a square product/);
    fails((p) => ({ ...p, causal: 'k-from-row' }), /k-from-row' needs a square product/);
    fails((p) => ({ ...p, a: { ...p.a, batchStrides: [-1, p.a.batchStrides[1]] } }), /a needs non-negative integer offset and batch strides/);
    fails((p) => ({ ...p, c: { ...p.c, offset: -2 } }), /c needs non-negative integer offset and batch strides/);
    fails((p) => ({ ...p, m: 2.5 }), /m must be a non-negative integer/);
    fails((p) => ({ ...p, batch: [p.batch[0], -1] }), /batch1 must be a non-negative integer/);
    fails((p) => ({ ...p, batch: [p.batch[0] + 1, p.batch[1]] }), RangeError);
    // Square products are accepted in each mode.
    const square = paddedProblem({ ...plain, transA: false, transB: false, m: 6, n: 6, k: 6 }, { ...layout, seed: 41 });
    for (const causal of ['lower-output', 'k-to-row', 'k-from-row'] as const) expect(() => run(square, (p) => ({ ...p, causal }))).not.toThrow();
  });
});
