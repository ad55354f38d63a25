import * as T from '../../tensor/index.ts';
import type { Scaling } from '../scaling.ts';

/**
 * Gradient scale of an embedding table [V, d] looked up by `lookups` ids: the library's
 * (V/lookups)^½ (paper-library, umup), DEMO's V/lookups (paper-charlm). The output is unscaled.
 */
export function embeddingGradScale(scaling: Scaling, vocab: number, lookups: number): number {
  if (scaling.mode === 'regular') return 1;
  return scaling.rules === 'paper-charlm' ? vocab / lookups : (vocab / lookups) ** 0.5;
}

/** Row lookup. Unit: output unscaled; table grad (V/lookups)^½, or V/lookups (paper-charlm). */
export function embedding(table: T.Tensor, ids: T.Tensor, scaling: Scaling): T.Tensor {
  return T.embedding(table, ids, { gradScale: embeddingGradScale(scaling, table.shape[0], ids.size) });
}
