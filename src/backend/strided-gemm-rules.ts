import type { StridedGemmParams } from './backend.ts';

/** Shape rules shared by the backends (bounds are each backend's own check). */
export function checkStridedGemm(p: StridedGemmParams): void {
  const counts = { m: p.m, n: p.n, k: p.k, batch0: p.batch[0], batch1: p.batch[1], lda: p.a.ld, ldb: p.b.ld, ldc: p.c.ld };
  for (const [name, v] of Object.entries(counts)) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`gemmStrided: ${name} must be a non-negative integer, got ${v}`);
  }
  for (const [name, s] of [['a', p.a], ['b', p.b], ['c', p.c]] as const) {
    if ([s.offset, ...s.batchStrides].some((v) => !Number.isInteger(v) || v < 0)) {
      throw new RangeError(`gemmStrided: ${name} needs non-negative integer offset and batch strides`);
    }
  }
  if ((p.causal === 'lower-output' && p.m !== p.n) || ((p.causal === 'k-to-row' || p.causal === 'k-from-row') && p.m !== p.k)) {
    throw new RangeError(`gemmStrided: causal '${p.causal}' needs a square product, got m ${p.m}, n ${p.n}, k ${p.k}`);
  }
}
