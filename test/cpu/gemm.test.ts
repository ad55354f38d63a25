import { afterAll, describe, expect, it } from 'vitest';
import { blasCandidates, findCblas, loadCblas } from '../../src/backend/cpu/blas.ts';
import {
  gemmImplementation, setGemmImplementation, sgemm, sgemmBatched, type GemmArgs,
} from '../../src/backend/cpu/gemm.ts';
import { seededRandom } from '../seeded-random.ts';

type Implementation = 'blas' | 'typescript';

/** Uniform in [−0.5, 0.5). */
function randomSource(seed: number): () => number {
  const uniform = seededRandom(seed);
  return () => uniform() - 0.5;
}

function filledArray(length: number, random: () => number): Float32Array {
  const array = new Float32Array(length);
  for (let i = 0; i < length; i++) array[i] = random();
  return array;
}

interface Case {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  alpha: number;
  beta: number;
  /** Extra columns beyond the width (ld = width + padding) and a leading offset. */
  padding: number;
  offset: number;
  nanInC?: boolean;
}

function makeArgs(spec: Case, random: () => number): GemmArgs {
  const { transA, transB, m, n, k, padding, offset } = spec;
  const aRows = transA ? k : m, aCols = transA ? m : k;
  const bRows = transB ? n : k, bCols = transB ? k : n;
  const lda = aCols + padding, ldb = bCols + padding, ldc = n + padding;
  const a = filledArray(offset + aRows * lda, random);
  const b = filledArray(offset + 1 + bRows * ldb, random);
  const c = filledArray(offset + 2 + m * ldc, random);
  if (spec.nanInC) c.fill(Number.NaN);
  return {
    transA, transB, m, n, k, alpha: spec.alpha, beta: spec.beta,
    a, aOffset: offset, lda, b, bOffset: offset + 1, ldb, c, cOffset: offset + 2, ldc,
  };
}

/**
 * Float64 product of the float32 inputs, plus the error bound a float32 accumulation may reach:
 * (k + 2) roundings of relative size 2^-24 times the magnitude of the terms.
 */
function reference(args: GemmArgs): { expected: Float64Array; bound: Float64Array } {
  const { transA, transB, m, n, k, alpha, beta, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc } = args;
  const expected = new Float64Array(m * n);
  const bound = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0, magnitude = 0;
      for (let p = 0; p < k; p++) {
        const av = transA ? a[aOffset + p * lda + i] : a[aOffset + i * lda + p];
        const bv = transB ? b[bOffset + j * ldb + p] : b[bOffset + p * ldb + j];
        sum += av * bv;
        magnitude += Math.abs(av * bv);
      }
      const c0 = c[cOffset + i * ldc + j];
      const scaledC = beta === 0 ? 0 : beta * c0;
      expected[i * n + j] = alpha * sum + scaledC;
      bound[i * n + j] = (k + 2) * 2 ** -24 * (Math.abs(alpha) * magnitude + Math.abs(scaledC)) + 1e-30;
    }
  }
  return { expected, bound };
}

/** Checks C against the reference and that nothing outside the C view was written. */
function expectMatchesReference(args: GemmArgs, label: string): void {
  const before = args.c.slice();
  const { expected, bound } = reference(args);
  sgemm(args);
  const { m, n, c, cOffset, ldc } = args;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const got = c[cOffset + i * ldc + j];
      const error = Math.abs(got - expected[i * n + j]);
      if (!(error <= bound[i * n + j])) {
        throw new Error(`${label}: C[${i},${j}] = ${got}, expected ${expected[i * n + j]} (bound ${bound[i * n + j]})`);
      }
    }
  }
  for (let index = 0; index < c.length; index++) {
    const row = Math.floor((index - cOffset) / ldc), col = (index - cOffset) - row * ldc;
    const insideView = index >= cOffset && row < m && col < n;
    if (!insideView && !Object.is(c[index], before[index])) {
      throw new Error(`${label}: element ${index} outside the C view changed`);
    }
  }
}

const blasLibrary = findCblas();
const noBlasReason = `no CBLAS library found; tried ${blasCandidates().join(", ")}`;
const implementations: { name: Implementation; skip: boolean }[] = [
  { name: 'typescript', skip: false },
  { name: 'blas', skip: blasLibrary === null },
];
const sizes = [1, 3, 17, 65, 130];
const transposes = [[false, false], [false, true], [true, false], [true, true]] as const;

afterAll(() => setGemmImplementation('auto'));

for (const { name, skip } of implementations) {
  const title = skip ? `sgemm via ${name} (skipped: ${noBlasReason})` : `sgemm via ${name}`;
  describe.skipIf(skip)(title, () => {
    it('reports the forced implementation', () => {
      setGemmImplementation(name);
      const reported = gemmImplementation();
      if (name === 'typescript') expect(reported).toBe('typescript');
      else expect(reported).toBe(`blas:${blasLibrary?.path}`);
    });

    for (const [transA, transB] of transposes) {
      it(`matches a float64 reference for transA=${transA} transB=${transB} over odd sizes`, () => {
        setGemmImplementation(name);
        const random = randomSource(17 + Number(transA) * 2 + Number(transB));
        for (const m of sizes) {
          for (const n of sizes) {
            for (const k of sizes) {
              // Mostly small products; the 130-wide cases still exercise several KC/MC blocks.
              if (m * n * k > 130 * 130 * 65) continue;
              const spec: Case = { transA, transB, m, n, k, alpha: 1, beta: 0, padding: (m + n + k) % 3, offset: k % 5 };
              expectMatchesReference(makeArgs(spec, random), `${name} ${m}x${n}x${k} tA=${transA} tB=${transB}`);
            }
          }
        }
      });
    }

    it('applies alpha and beta, including alpha = 0 and k = 0', () => {
      setGemmImplementation(name);
      const random = randomSource(99);
      const scalings: [number, number][] = [[0.5, 1], [-2, 0.25], [1.5, -1], [0, 2], [3, 0]];
      for (const [alpha, beta] of scalings) {
        for (const [transA, transB] of transposes) {
          // 5x1030x7 spans two NC column panels, 9x6x520 three KC slabs accumulating into C.
          for (const [m, n, k] of [[17, 65, 3], [65, 17, 130], [3, 3, 0], [130, 5, 17], [5, 1030, 7], [9, 6, 520]]) {
            const spec: Case = { transA, transB, m, n, k, alpha, beta, padding: 2, offset: 3 };
            expectMatchesReference(makeArgs(spec, random), `${name} alpha=${alpha} beta=${beta} ${m}x${n}x${k}`);
          }
        }
      }
    });

    it('ignores NaN already in C when beta = 0', () => {
      setGemmImplementation(name);
      const random = randomSource(7);
      for (const [transA, transB] of transposes) {
        for (const [m, n, k] of [[1, 1, 1], [17, 65, 130], [65, 3, 17], [4, 4, 0]]) {
          const spec: Case = { transA, transB, m, n, k, alpha: 1.25, beta: 0, padding: 1, offset: 2, nanInC: true };
          const args = makeArgs(spec, random);
          expectMatchesReference(args, `${name} NaN C ${m}x${n}x${k}`);
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < n; j++) expect(Number.isNaN(args.c[args.cOffset + i * args.ldc + j])).toBe(false);
          }
        }
      }
    });

    it('multiplies batches with strides, including a broadcast operand (stride 0)', () => {
      setGemmImplementation(name);
      const random = randomSource(5);
      const m = 17, n = 9, k = 33, batch = 4;
      for (const [transA, transB] of transposes) {
        for (const broadcast of ['none', 'A', 'B'] as const) {
          const lda = (transA ? m : k) + 1, ldb = (transB ? k : n) + 2, ldc = n + 3;
          const sizeA = (transA ? k : m) * lda, sizeB = (transB ? n : k) * ldb, sizeC = m * ldc;
          const strideA = broadcast === 'A' ? 0 : sizeA + 5;
          const strideB = broadcast === 'B' ? 0 : sizeB + 1;
          const strideC = sizeC + 7;
          const a = filledArray(2 + strideA * (batch - 1) + sizeA, random);
          const b = filledArray(1 + strideB * (batch - 1) + sizeB, random);
          const c = filledArray(3 + strideC * (batch - 1) + sizeC, random);
          const common = { transA, transB, m, n, k, alpha: 0.75, beta: 0.5, lda, ldb, ldc };
          const perMatrix = Array.from({ length: batch }, (_, i) => {
            const args: GemmArgs = {
              ...common, a, aOffset: 2 + i * strideA, b, bOffset: 1 + i * strideB, c: c.slice(), cOffset: 3 + i * strideC,
            };
            return { args, ...reference(args) };
          });
          sgemmBatched({ ...common, a, aOffset: 2, b, bOffset: 1, c, cOffset: 3, batch, strideA, strideB, strideC });
          for (const [index, { args, expected, bound }] of perMatrix.entries()) {
            for (let i = 0; i < m; i++) {
              for (let j = 0; j < n; j++) {
                const error = Math.abs(c[args.cOffset + i * ldc + j] - expected[i * n + j]);
                expect(error, `batch ${index} broadcast ${broadcast} C[${i},${j}]`).toBeLessThanOrEqual(bound[i * n + j]);
              }
            }
          }
        }
      }
    });
  });
}

describe('sgemm in auto mode', () => {
  it('is correct on both sides of the BLAS size threshold', () => {
    setGemmImplementation('auto');
    const random = randomSource(3);
    for (const [m, n, k] of [[2, 3, 4], [7, 7, 7], [8, 8, 8], [33, 17, 65]]) {
      const spec: Case = { transA: true, transB: false, m, n, k, alpha: 1, beta: 0.5, padding: 1, offset: 4 };
      expectMatchesReference(makeArgs(spec, random), `auto ${m}x${n}x${k}`);
    }
  });
});

describe('sgemm argument checks', () => {
  const base = (): GemmArgs => ({
    transA: false, transB: false, m: 2, n: 3, k: 4, alpha: 1, beta: 0,
    a: new Float32Array(8), aOffset: 0, lda: 4, b: new Float32Array(12), bOffset: 0, ldb: 3,
    c: new Float32Array(6), cOffset: 0, ldc: 3,
  });

  it('rejects views that reach past the array, naming the operand', () => {
    expect(() => sgemm({ ...base(), aOffset: 1 })).toThrow(/A view .* array of length 8/);
    expect(() => sgemm({ ...base(), ldb: 4 })).toThrow(/B view/);
    expect(() => sgemm({ ...base(), transB: true, ldb: 5 })).toThrow(/B view/);
    expect(() => sgemm({ ...base(), cOffset: 1 })).toThrow(/C view/);
  });

  it('rejects leading dimensions narrower than the matrix', () => {
    expect(() => sgemm({ ...base(), lda: 3 })).toThrow(/lda=3 is smaller than the 4 columns of A/);
  });

  it('rejects batches whose last matrix is out of range', () => {
    const args = { ...base(), batch: 2, strideA: 0, strideB: 0, strideC: 6 };
    expect(() => sgemmBatched(args)).toThrow(/C view .* batch 2/);
    expect(() => sgemmBatched({ ...args, strideC: -1 })).toThrow(/strideC must be a non-negative integer/);
  });

  it('does nothing for empty products', () => {
    const c = new Float32Array([7]);
    sgemm({ ...base(), m: 0, c, ldc: 3 });
    sgemmBatched({ ...base(), batch: 0, strideA: 0, strideB: 0, strideC: 0 });
    expect(c[0]).toBe(7);
  });
});

describe('CBLAS discovery', () => {
  it('tries REPRO_BLAS first, then the optimised libraries before generic sonames', () => {
    const candidates = blasCandidates({ REPRO_BLAS: '/opt/custom/libcblas.so' });
    expect(candidates[0]).toBe('/opt/custom/libcblas.so');
    expect(candidates.indexOf('libopenblas.so.0')).toBeLessThan(candidates.indexOf('libblas.so.3'));
    expect(blasCandidates({})[0]).toBe('libopenblas.so.0');
  });

  it('throws for a library that cannot be loaded, so probing moves on', () => {
    expect(() => loadCblas('/nonexistent/libnothing.so')).toThrow();
  });

  it.skipIf(blasLibrary === null)('identifies OpenBLAS by its exported symbols', () => {
    if (blasLibrary?.path.includes('openblas')) expect(blasLibrary.vendor).toBe('openblas');
    else expect(blasLibrary?.vendor).not.toBe('openblas');
  });
});
