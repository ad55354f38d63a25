// Row-major SGEMM entry point of the CPU backend: validates the views, then dispatches to the system
// CBLAS (when one was found and the product is big enough to amortise the FFI call) or to the
// TypeScript kernel.
import {
  CBLAS_NO_TRANS, CBLAS_ROW_MAJOR, CBLAS_TRANS, blasProbeFailures, findCblas, type CblasLibrary,
} from './blas.ts';
import { sgemmTs } from './gemm-ts.ts';

export interface GemmArgs {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  alpha: number;
  a: Float32Array;
  aOffset: number;
  lda: number;
  b: Float32Array;
  bOffset: number;
  ldb: number;
  beta: number;
  c: Float32Array;
  cOffset: number;
  ldc: number;
}

export interface BatchedGemmArgs extends GemmArgs {
  batch: number;
  /** Element distance between consecutive A matrices; 0 broadcasts one A over the batch. */
  strideA: number;
  strideB: number;
  strideC: number;
}

export type GemmImplementationChoice = 'auto' | 'blas' | 'typescript';

/**
 * Below this many multiply-adds (m*n*k) the TypeScript kernel wins: one koffi call costs about
 * 0.2 us, 0.4 us with the subarray views for non-zero offsets, while the TS kernel finishes a
 * 4x4x4 product in 0.18 us and an 8x8x8 one in about the same time as the call alone.
 * Measured on a 2-core AMD EPYC (Zen 4) with OpenBLAS 0.3.21; `npm run bench:cpu` reprints it.
 */
export const BLAS_MIN_MULTIPLY_ADDS = 512;

let choice: GemmImplementationChoice = 'auto';
let warnedAboutReferenceBlas = false;

/** Forces an implementation (tests, benchmark). 'blas' throws if no CBLAS can be loaded. */
export function setGemmImplementation(which: GemmImplementationChoice): void {
  if (which === 'blas' && !findCblas()) {
    throw new Error(`no CBLAS library could be loaded (${blasProbeFailures().join('; ')})`);
  }
  choice = which;
}

/**
 * What large products run on. In 'auto' mode products under BLAS_MIN_MULTIPLY_ADDS still use the
 * TypeScript kernel even when this says 'blas:...'.
 */
export function gemmImplementation(): `blas:${string}` | 'typescript' {
  const blas = activeBlas();
  return blas ? `blas:${blas.path}` : 'typescript';
}

function activeBlas(): CblasLibrary | null {
  if (choice === 'typescript') return null;
  const blas = findCblas();
  if (!blas) return null;
  if (choice === 'auto' && blas.vendor === 'reference' && !blas.explicit) {
    // The netlib reference sgemm is an unblocked loop. Measured at 1024^3 it matches our kernel
    // (6 GFLOP/s) only when B is not transposed, and falls to 2.5 GFLOP/s with B transposed and
    // 0.6 GFLOP/s with both transposed, while ours stays at 6; so 'auto' skips it unless the
    // user named it in REPRO_BLAS.
    if (!warnedAboutReferenceBlas) {
      warnedAboutReferenceBlas = true;
      process.emitWarning(
        `${blas.path} is the slow reference BLAS; using the TypeScript matmul kernel instead. ` +
        'Install an optimised BLAS (e.g. apt-get install libopenblas0-pthread) or point REPRO_BLAS at one.');
    }
    return null;
  }
  return blas;
}

/** Row-major C = alpha * op(A) * op(B) + beta * C on strided views (cblas_sgemm with CblasRowMajor). */
export function sgemm(args: GemmArgs): void {
  validateGemm(args, 1, 0, 0, 0);
  runGemm(args, args.aOffset, args.bOffset, args.cOffset);
}

/** `batch` independent products; matrix i of X starts at xOffset + i * strideX. */
export function sgemmBatched(args: BatchedGemmArgs): void {
  const { batch, strideA, strideB, strideC } = args;
  checkCount('batch', batch);
  checkCount('strideA', strideA);
  checkCount('strideB', strideB);
  checkCount('strideC', strideC);
  if (batch === 0) return;
  validateGemm(args, batch, strideA, strideB, strideC);
  for (let i = 0; i < batch; i++) {
    runGemm(args, args.aOffset + i * strideA, args.bOffset + i * strideB, args.cOffset + i * strideC);
  }
}

function runGemm(args: GemmArgs, aOffset: number, bOffset: number, cOffset: number): void {
  const { transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc } = args;
  if (m === 0 || n === 0) return;
  const blas = activeBlas();
  // alpha == 0 and k == 0 reduce to C = beta*C; doing that here keeps NaN in A/B from leaking
  // through implementations that still multiply by alpha.
  const trivial = alpha === 0 || k === 0;
  const useBlas = blas !== null && !trivial && (choice === 'blas' || m * n * k >= BLAS_MIN_MULTIPLY_ADDS);
  if (!useBlas) {
    sgemmTs(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);
    return;
  }
  blas.sgemm(
    CBLAS_ROW_MAJOR, transA ? CBLAS_TRANS : CBLAS_NO_TRANS, transB ? CBLAS_TRANS : CBLAS_NO_TRANS,
    m, n, k, alpha,
    aOffset === 0 ? a : a.subarray(aOffset), lda,
    bOffset === 0 ? b : b.subarray(bOffset), ldb,
    beta,
    cOffset === 0 ? c : c.subarray(cOffset), ldc,
  );
}

function checkCount(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`sgemm: ${name} must be a non-negative integer, got ${value}`);
  }
}

/**
 * Out-of-range views must be caught here: BLAS would read or write past the array without a
 * word, corrupting the JS heap.
 */
function validateGemm(args: GemmArgs, batch: number, strideA: number, strideB: number, strideC: number): void {
  const { transA, transB, m, n, k } = args;
  checkCount('m', m);
  checkCount('n', n);
  checkCount('k', k);
  if (m === 0 || n === 0) return;
  checkView('A', args.a, args.aOffset, args.lda, transA ? k : m, transA ? m : k, batch, strideA);
  checkView('B', args.b, args.bOffset, args.ldb, transB ? n : k, transB ? k : n, batch, strideB);
  checkView('C', args.c, args.cOffset, args.ldc, m, n, batch, strideC);
}

function checkView(name: string, data: Float32Array, offset: number, ld: number,
  rows: number, cols: number, batch: number, stride: number): void {
  checkCount(`${name} offset`, offset);
  checkCount(`ld${name.toLowerCase()}`, ld);
  if (ld < Math.max(1, cols)) {
    throw new RangeError(`sgemm: ld${name.toLowerCase()}=${ld} is smaller than the ${cols} columns of ${name}`);
  }
  if (rows === 0 || cols === 0) return;
  const lastElement = offset + (batch - 1) * stride + (rows - 1) * ld + cols - 1;
  if (lastElement >= data.length) {
    throw new RangeError(
      `sgemm: ${name} view (${rows}x${cols}, offset ${offset}, ld ${ld}, batch ${batch}, stride ${stride}) ` +
      `reaches element ${lastElement} of an array of length ${data.length}`);
  }
}
