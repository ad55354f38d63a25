// The CPU twin of gemmStrided: one sgemm per batch entry (each bounds-checked; operands copied
// and rounded first with roundInputs, C rounded after with roundOutput), then the causal
// 'lower-output' zeros. The 'k-to-row' / 'k-from-row' hints are promises that the skipped A
// entries are zero, so the full product here is the reference the CUDA kernel's shortened sums
// are tested against.
import type { StridedGemmParams } from '../backend.ts';
import { sgemm } from './gemm.ts';
import { f32 } from './storage.ts';
import { checkStridedGemm } from '../strided-gemm-rules.ts';
import { quantise } from '../../formats/quantise.ts';
import { parseFormat } from '../../formats/registry.ts';
import type { FloatFormat } from '../../formats/format.ts';

export function gemmStrided(p: StridedGemmParams): void {
  checkStridedGemm(p);
  const a = f32(p.a.storage);
  const b = f32(p.b.storage);
  const c = f32(p.c.storage);
  const [P, Q] = p.batch;
  const inputFormat = p.roundInputs ? parseFormat(p.inputFormat!) : null;
  const outputFormat = p.roundOutput ? parseFormat(p.roundOutput) : null;
  const [aRows, aCols] = p.transA ? [p.k, p.m] : [p.m, p.k];
  const [bRows, bCols] = p.transB ? [p.n, p.k] : [p.k, p.n];
  for (let i = 0; i < P; i++) {
    for (let j = 0; j < Q; j++) {
      const at = (s: StridedGemmParams['a']) => s.offset + i * s.batchStrides[0] + j * s.batchStrides[1];
      const cOffset = at(p.c);
      // Rounded operands are dense copies (ld = cols) of this batch entry's matrices.
      const operand = (data: Float32Array, s: StridedGemmParams['a'], rows: number, cols: number) =>
        inputFormat ? { data: roundedCopy(data, at(s), s.ld, rows, cols, inputFormat), offset: 0, ld: Math.max(1, cols) } : { data, offset: at(s), ld: s.ld };
      const ra = operand(a, p.a, aRows, aCols);
      const rb = operand(b, p.b, bRows, bCols);
      sgemm({
        transA: p.transA, transB: p.transB, m: p.m, n: p.n, k: p.k, alpha: p.alpha,
        a: ra.data, aOffset: ra.offset, lda: ra.ld,
        b: rb.data, bOffset: rb.offset, ldb: rb.ld,
        beta: p.beta,
        c, cOffset, ldc: p.c.ld,
      });
      if (outputFormat) for (let r = 0; r < p.m; r++) roundInPlace(c.subarray(cOffset + r * p.c.ld, cOffset + r * p.c.ld + p.n), outputFormat);
      if (p.causal === 'lower-output') {
        for (let r = 0; r < p.m; r++) c.fill(0, cOffset + r * p.c.ld + r + 1, cOffset + r * p.c.ld + p.n);
      }
    }
  }
}

const NEAREST = { rounding: 'nearest', overflow: 'inf' } as const;

function roundInPlace(values: Float32Array, format: FloatFormat): void {
  quantise(values, values, format, NEAREST);
}

/** rows × cols of data (row stride ld from offset) as a dense array, rounded to format. */
function roundedCopy(data: Float32Array, offset: number, ld: number, rows: number, cols: number, format: FloatFormat): Float32Array {
  const out = new Float32Array(Math.max(1, rows * cols));
  for (let r = 0; r < rows; r++) out.set(data.subarray(offset + r * ld, offset + r * ld + cols), r * cols);
  roundInPlace(out, format);
  return out;
}
