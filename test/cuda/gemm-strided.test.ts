/**
 * CUDA gemmStrided against the CPU twin: the gemm_strided kernel (two unmergeable batch levels,
 * causal skipping, every transpose, scalar and vector accesses) and the route of mergeable
 * products to cuBLAS. Tolerance as in gemm.test.ts (accumulation order): each element within
 * 1e-5·(|α|·Σ|a·b| + |β·c|) of the CPU's; exact +0 where 'lower-output' zeroes; elements outside
 * every C matrix untouched.
 */
import { describe, expect, it } from 'vitest';
import type { Backend, CausalGemm } from '../../src/backend/backend.ts';
import { CpuBackend } from '../../src/backend/cpu/index.ts';
import { gemmStrided as gemmStridedKernel, stridedGemmTileRows } from '../../src/backend/cuda/gemm-strided-ops.ts';
import { GEMM_STRIDED_TILE } from '../../src/backend/cuda/kernels/gemm-strided.ts';
import { bind, expectMatches, indexOf, keepPromise, opIndex, paddedProblem, randomValues, reference, type Layout, type PaddedLayout, type Problem, type Shape } from '../gemm-strided-cases.ts';
import { cuda, noCudaReason, runOn } from './helpers.ts';

const REL = 1e-5;
const cpuBackend = new CpuBackend();
const TRANSPOSES = [[false, false], [true, false], [false, true], [true, true]] as const;
const SIZES = [1, 5, 33, 64, 70, 130];
const name = (s: Shape) => `${s.transA ? 'T' : 'N'}${s.transB ? 'T' : 'N'} ${s.m}×${s.n}×${s.k} batch ${s.batch.join('·')} α ${s.alpha} β ${s.beta} ${s.causal}`;

/** Nearest-even rounding to BF16 (finite inputs). */
function roundToBf16(v: number): number {
  const bits = new Uint32Array(new Float32Array([v]).buffer)[0]!;
  const rounded = ((bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000) >>> 0;
  return new Float32Array(new Uint32Array([rounded]).buffer)[0]!;
}

/** Nearest rounding to FP16's 11 significant bits (inputs in [−1, 1), above FP16's normal range's floor or zero). */
function roundToFp16(v: number): number {
  if (v === 0) return 0;
  const exponent = Math.floor(Math.log2(Math.abs(v)));
  const step = 2 ** (Math.max(exponent, -14) - 10);
  return Math.round(v / step) * step;
}

describe.skipIf(!cuda)(`CUDA gemmStrided ${noCudaReason}`, () => {
  const gpu = cuda!;
  const cublasProducts = () => Object.values(gpu.gemmEngine.counts).reduce((sum, v) => sum + v, 0);

  /** The C buffer after the product: through backend.gemmStrided, or straight on the kernel. */
  const run = (backend: Backend, problem: Problem, kernelOnly = false): Float32Array =>
    runOn(backend, problem.buffers, (s) => {
      const params = bind(problem, s);
      if (kernelOnly) gemmStridedKernel(gpu.runtime, params);
      else backend.gemmStrided(params);
    }, [problem.c.buffer])[problem.c.buffer] as Float32Array;

  /** GPU against CPU; `route` says whether the product must reach cuBLAS or the kernel. */
  const compare = (problem: Problem, route: 'kernel' | 'cublas' | 'kernel-only', label = name(problem.shape)): void => {
    const before = cublasProducts();
    const got = run(gpu, problem, route === 'kernel-only');
    expect(cublasProducts() - before, `${label}: cuBLAS products`).toBe(route === 'cublas' ? 1 : 0);
    expectMatches(problem, reference(problem), got, run(cpuBackend, problem), REL, label);
  };

  it('every transpose, sizes that are not multiples of the tile, scalar and vector accesses', () => {
    let seed = 1;
    for (const [transA, transB] of TRANSPOSES) {
      for (const m of SIZES) {
        for (const n of SIZES) {
          for (const k of SIZES) {
            const shape: Shape = { transA, transB, m, n, k, alpha: 0.7, beta: 0.5, batch: [1, 1], causal: 'none' };
            // Alternately odd leading dimensions and offsets (scalar path) and 16-byte aligned rows.
            const layout: PaddedLayout = (m + n + k) % 2 ? { pad: 1, offset: 3, gap: 0, seed } : { pad: 0, offset: 4, gap: 0, seed, align: 4 };
            compare(paddedProblem(shape, layout), 'kernel-only');
            seed += 3;
          }
        }
      }
    }
  });

  it('two batch levels that do not merge: unaligned and aligned, beta 0 over NaN, beta 0.5, alpha 0.7', () => {
    let seed = 100;
    for (const [transA, transB] of TRANSPOSES) {
      for (const [alpha, beta] of [[0.7, 0.5], [1, 0]] as const) {
        for (const layout of [{ pad: 1, offset: 3, gap: 5 }, { pad: 3, offset: 8, gap: 4, align: 4 }]) {
          const shape: Shape = { transA, transB, m: 70, n: 67, k: 45, alpha, beta, batch: [2, 3], causal: 'none' };
          compare(paddedProblem(shape, { ...layout, seed: seed++, nanC: beta === 0 }), 'kernel');
        }
      }
    }
  });

  it('each causal mode with a triangular op(A), every transpose', () => {
    let seed = 200;
    for (const causal of ['lower-output', 'k-to-row', 'k-from-row'] as const) {
      for (const [transA, transB] of TRANSPOSES) {
        for (const [size, layout] of [[130, { pad: 1, offset: 1, gap: 3 }], [132, { pad: 0, offset: 4, gap: 4, align: 4 }]] as const) {
          const other = causal === 'lower-output' ? { n: size, k: 37 } : { n: 29, k: size };
          const shape: Shape = { transA, transB, m: size, ...other, alpha: 0.7, beta: causal === 'k-to-row' ? 0 : 0.5, batch: [2, 2], causal };
          const problem = paddedProblem(shape, { ...layout, seed: seed++, nanC: shape.beta === 0 });
          keepPromise(problem);
          if (causal === 'lower-output') for (const index of reference(problem).zeros) problem.buffers.c![index] = Number.NaN;
          compare(problem, 'kernel');
        }
      }
    }
  });

  it('causal products skip whole tiles: B beyond the promise is never read', () => {
    // NaN in op(B) rows that no output row of a tile needs: 'k-to-row' rows below the first tile
    // stop before them, 'k-from-row' rows from the second tile on start after them.
    for (const causal of ['k-to-row', 'k-from-row'] as const) {
      const size = 2 * GEMM_STRIDED_TILE + 2;
      const shape: Shape = { transA: causal === 'k-from-row', transB: false, m: size, n: 24, k: size, alpha: 1, beta: 0, batch: [1, 2], causal };
      const problem = paddedProblem(shape, { pad: 0, offset: 0, gap: 4, seed: 300 });
      keepPromise(problem);
      const finite = reference(problem);
      const want = run(cpuBackend, problem);
      const poisoned = { ...problem, buffers: { ...problem.buffers, b: problem.buffers.b!.slice() } };
      const skipped = (row: number) => (causal === 'k-to-row' ? row >= GEMM_STRIDED_TILE : row < GEMM_STRIDED_TILE);
      for (let q = 0; q < 2; q++) for (let l = 0; l < size; l++) if (skipped(l)) for (let j = 0; j < shape.n; j++) poisoned.buffers.b[opIndex(problem, 'b', 0, q, l, j)] = Number.NaN;
      const got = run(gpu, poisoned);
      // Only rows whose tiles never reach the poisoned rows of B are compared; the rest of C is
      // set back to what it was, as expectMatches wants of elements it does not check.
      const [from, to] = causal === 'k-to-row' ? [0, GEMM_STRIDED_TILE] : [GEMM_STRIDED_TILE, size];
      const kept = { ...finite, expected: new Map<number, number>() };
      const ignored = got.slice();
      for (let q = 0; q < 2; q++) {
        for (let i = 0; i < size; i++) {
          for (let j = 0; j < shape.n; j++) {
            const index = indexOf(problem.c, 0, q, i, j);
            if (i >= from && i < to) kept.expected.set(index, finite.expected.get(index)!);
            else ignored[index] = problem.buffers.c![index]!;
          }
        }
      }
      expectMatches(problem, kept, ignored, want, REL, `${causal} skipping`);
    }
  });

  it('both tile heights (64 and 32 rows: the host picks by block count), causal and plain', () => {
    const sms = gpu.runtime.multiprocessors;
    const size = 128;
    let seed = 500;
    for (const rows of [64, 32]) {
      // 64 rows once there are two 64-row blocks per multiprocessor (4 per 128×128 entry); 32 for a batch of 2.
      const batch = rows === 64 ? Math.ceil(sms / 2) : 2;
      expect(stridedGemmTileRows(size, size, batch, sms), `batch ${batch}`).toBe(rows);
      // Each causal mode once per height, with the transposes taken in turn (the float64 reference is slow).
      (['none', 'lower-output', 'k-to-row', 'k-from-row'] as const).forEach((causal, i) => {
        const [transA, transB] = TRANSPOSES[(i + rows / 32) % 4]!;
        const shape: Shape = { transA, transB, m: size, n: size, k: size, alpha: 0.7, beta: 0.5, batch: [batch, 1], causal };
        const problem = paddedProblem(shape, { pad: 0, offset: 4, gap: 4, seed: seed++, align: 4 });
        keepPromise(problem);
        compare(problem, 'kernel-only', `${rows} rows: ${name(shape)}`);
      });
    }
  });

  it('operands read as windows of a fused [B, S, 3, H, D] projection (the attention products)', () => {
    for (const [B, S, H, D] of [[2, 132, 3, 40], [3, 70, 2, 24]] as const) {
      const qkv = (buffer: string, which: number): Layout => ({ buffer, offset: which * H * D, ld: 3 * H * D, batchStrides: [S * 3 * H * D, D] });
      const heads = (buffer: string): Layout => ({ buffer, offset: 0, ld: H * D, batchStrides: [S * H * D, D] });
      const scores = (buffer: string): Layout => ({ buffer, offset: 0, ld: S, batchStrides: [H * S * S, S * S] });
      const sizes: Record<string, number> = { qkv: B * S * 3 * H * D, gqkv: B * S * 3 * H * D, heads: B * S * H * D, gheads: B * S * H * D, scores: B * H * S * S, gscores: B * H * S * S };
      const product = (seed: number, shape: Omit<Shape, 'batch'>, a: Layout, b: Layout, c: Layout): Problem => {
        const buffers: Record<string, Float32Array> = {};
        for (const l of [a, b, c]) buffers[l.buffer] ??= randomValues(sizes[l.buffer]!, seed + Object.keys(buffers).length);
        const problem = { shape: { ...shape, batch: [B, H] as const }, a, b, c, buffers };
        keepPromise(problem);
        return problem;
      };
      const dims = (m: number, n: number, k: number, causal: CausalGemm, alpha = 1, beta = 0) => ({ m, n, k, causal, alpha, beta });
      const problems: Problem[] = [
        // scores = q·kᵀ, plain and causal
        product(1, { transA: false, transB: true, ...dims(S, S, D, 'none', 0.125) }, qkv('qkv', 0), qkv('qkv', 1), scores('scores')),
        product(2, { transA: false, transB: true, ...dims(S, S, D, 'lower-output', 0.125) }, qkv('qkv', 0), qkv('qkv', 1), scores('scores')),
        // out = P·v
        product(3, { transA: false, transB: false, ...dims(S, D, S, 'k-to-row') }, scores('scores'), qkv('qkv', 2), heads('heads')),
        // dP = dO·vᵀ
        product(4, { transA: false, transB: true, ...dims(S, S, D, 'lower-output') }, heads('gheads'), qkv('qkv', 2), scores('gscores')),
        // dv = Pᵀ·dO, dq = dS·k, dk = dSᵀ·q into windows of the fused gradient (accumulating in part)
        product(5, { transA: true, transB: false, ...dims(S, D, S, 'k-from-row', 1, 0.5) }, scores('scores'), heads('gheads'), qkv('gqkv', 2)),
        product(6, { transA: false, transB: false, ...dims(S, D, S, 'k-to-row', 0.7) }, scores('gscores'), qkv('qkv', 1), qkv('gqkv', 0)),
        product(7, { transA: true, transB: false, ...dims(S, D, S, 'k-from-row', 0.7, 1) }, scores('gscores'), qkv('qkv', 0), qkv('gqkv', 1)),
      ];
      for (const problem of problems) compare(problem, 'kernel', `B ${B} S ${S} H ${H} D ${D}: ${name(problem.shape)}`);
    }
  });

  it('16-bit operands on tensor cores (TF32 mma, exact for BF16 and FP16 values): every causal mode, transpose and tile height', () => {
    // Products of 16-bit values are exact in float32; only the accumulation differs (its order,
    // and rounding inside the tensor cores), hence a looser bound than the FMA path's.
    const TENSOR_CORE_REL = 4e-5;
    const sms = gpu.runtime.multiprocessors;
    let seed = 700;
    for (const inputFormat of ['bf16', 'fp16'] as const) {
      const round = inputFormat === 'bf16' ? roundToBf16 : roundToFp16;
      (['none', 'lower-output', 'k-to-row', 'k-from-row'] as const).forEach((causal, i) => {
        // A batch of 2 takes 32-row tiles, one of `sms` 64-row tiles (stridedGemmTileRows).
        for (const batch of [2, sms]) {
          const [transA, transB] = TRANSPOSES[(i + batch) % 4]!;
          const size = 130;
          const other = causal === 'none' ? { n: 67, k: 45 } : causal === 'lower-output' ? { n: size, k: 37 } : { n: 29, k: size };
          const shape: Shape = { transA, transB, m: size, ...other, alpha: 0.7, beta: 0.5, batch: [batch, 1], causal, inputFormat };
          const problem = paddedProblem(shape, { pad: 0, offset: 4, gap: 4, seed: seed++, align: 4 });
          for (const operand of ['a', 'b'] as const) problem.buffers[operand] = problem.buffers[operand]!.map(round);
          keepPromise(problem);
          const got = run(gpu, problem, true);
          expectMatches(problem, reference(problem), got, run(cpuBackend, problem), TENSOR_CORE_REL, `${inputFormat} ${name(shape)}`);
        }
      });
    }
  });

  it('mergeable batch levels go to cuBLAS (unless causal), with the same results', () => {
    let seed = 400;
    for (const [transA, transB] of TRANSPOSES) {
      for (const batch of [[2, 3], [1, 4], [3, 1]] as const) {
        const shape: Shape = { transA, transB, m: 40, n: 40, k: 40, alpha: 0.7, beta: 0.5, batch, causal: 'none' };
        compare(paddedProblem(shape, { pad: 1, offset: 2, gap: 0, seed: seed++ }), 'cublas');
        compare(paddedProblem({ ...shape, causal: 'lower-output' }, { pad: 1, offset: 2, gap: 0, seed: seed++ }), 'kernel');
      }
    }
  });

  it('k = 0 and alpha = 0 give beta·C without reading A or B (NaN there does not leak)', () => {
    let seed = 500;
    for (const [transA, transB] of TRANSPOSES) {
      for (const [k, alpha] of [[0, 1], [33, 0]] as const) {
        for (const beta of [0.5, 0]) {
          const shape: Shape = { transA, transB, m: 70, n: 33, k, alpha, beta, batch: [2, 2], causal: 'none' };
          const problem = paddedProblem(shape, { pad: 1, offset: 1, gap: 3, seed: seed++, nanC: beta === 0 });
          const ref = reference(problem);
          problem.buffers.a!.fill(Number.NaN);
          problem.buffers.b!.fill(Number.NaN);
          const got = run(gpu, problem);
          expectMatches(problem, ref, got, run(cpuBackend, problem), REL, name(shape));
        }
      }
    }
  });

  it('independent products two to a launch, the odd one alone, mergeable ones through cuBLAS', () => {
    const renamed = (problem: Problem, tag: string): Problem => {
      const rename = (l: Layout): Layout => ({ ...l, buffer: `${tag}${l.buffer}` });
      return { ...problem, a: rename(problem.a), b: rename(problem.b), c: rename(problem.c), buffers: Object.fromEntries(Object.entries(problem.buffers).map(([k, v]) => [`${tag}${k}`, v])) };
    };
    const shapes: Shape[] = [
      { transA: true, transB: false, m: 130, n: 40, k: 130, alpha: 0.7, beta: 0.5, batch: [2, 3], causal: 'k-from-row' },
      { transA: false, transB: true, m: 70, n: 70, k: 33, alpha: 1, beta: 0, batch: [3, 2], causal: 'lower-output' },
      { transA: false, transB: false, m: 40, n: 24, k: 40, alpha: 1, beta: 0, batch: [1, 4], causal: 'none' },
      { transA: false, transB: false, m: 64, n: 5, k: 64, alpha: 0.5, beta: 1, batch: [2, 2], causal: 'k-to-row' },
    ];
    const problems = shapes.map((shape, i) => {
      const problem = renamed(paddedProblem(shape, { pad: 1, offset: 3, gap: shape.batch[0] === 1 ? 0 : 5, seed: 700 + i, nanC: shape.beta === 0 }), `p${i}`);
      keepPromise(problem);
      return problem;
    });
    const buffers = Object.assign({}, ...problems.map((p) => p.buffers)) as Record<string, Float32Array>;
    const outs = problems.map((p) => p.c.buffer);
    const before = cublasProducts();
    const launch = (backend: Backend) => runOn(backend, buffers, (s) => backend.gemmsStrided(problems.map((p) => bind(p, s))), outs);
    const got = launch(gpu);
    expect(cublasProducts() - before, 'the mergeable product').toBe(1);
    const want = launch(cpuBackend);
    problems.forEach((p, i) => expectMatches(p, reference(p), got[p.c.buffer] as Float32Array, want[p.c.buffer] as Float32Array, REL, `product ${i}: ${name(p.shape)}`));
  });

  it('rejects views past the storage, too many batch entries and non-square causal products', () => {
    const shape: Shape = { transA: false, transB: false, m: 6, n: 5, k: 4, alpha: 1, beta: 0, batch: [2, 2], causal: 'none' };
    const problem = paddedProblem(shape, { pad: 0, offset: 0, gap: 1, seed: 600 });
    const fails = (p: Problem, pattern: RegExp) => expect(() => run(gpu, p)).toThrow(pattern);
    fails({ ...problem, shape: { ...shape, batch: [3, 2] } }, /needs \d+ elements/);
    fails({ ...problem, shape: { ...shape, causal: 'lower-output' } }, /needs a square product/);
    // 256·257 entries of a 1×1 product, strides that do not merge.
    const tiny: Layout = { buffer: 'x', offset: 0, ld: 1, batchStrides: [0, 1] };
    const many: Problem = {
      shape: { transA: false, transB: false, m: 1, n: 1, k: 1, alpha: 1, beta: 0, batch: [256, 257], causal: 'none' },
      a: tiny, b: tiny, c: { ...tiny, buffer: 'y' }, buffers: { x: randomValues(300, 1), y: new Float32Array(300) },
    };
    fails(many, /above the grid's 65535/);
  });
});
