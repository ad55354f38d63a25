// The CPU twin of gemmStrided: one sgemm per batch entry (each bounds-checked), then the causal
// 'lower-output' zeros. The 'k-to-row' / 'k-from-row' hints are promises that the skipped A
// entries are zero, so the full product here is the reference the CUDA kernel's shortened sums
// are tested against.
import type { StridedGemmParams } from '../backend.ts';
import { sgemm } from './gemm.ts';
import { f32 } from './storage.ts';
import { checkStridedGemm } from '../strided-gemm-rules.ts';

export function gemmStrided(p: StridedGemmParams): void {
  checkStridedGemm(p);
  const a = f32(p.a.storage);
  const b = f32(p.b.storage);
  const c = f32(p.c.storage);
  const [P, Q] = p.batch;
  for (let i = 0; i < P; i++) {
    for (let j = 0; j < Q; j++) {
      const at = (s: StridedGemmParams['a']) => s.offset + i * s.batchStrides[0] + j * s.batchStrides[1];
      const cOffset = at(p.c);
      sgemm({
        transA: p.transA, transB: p.transB, m: p.m, n: p.n, k: p.k, alpha: p.alpha,
        a, aOffset: at(p.a), lda: p.a.ld,
        b, bOffset: at(p.b), ldb: p.b.ld,
        beta: p.beta,
        c, cOffset, ldc: p.c.ld,
      });
      if (p.causal === 'lower-output') {
        for (let r = 0; r < p.m; r++) c.fill(0, cOffset + r * p.c.ld + r + 1, cOffset + r * p.c.ld + p.n);
      }
    }
  }
}
