/**
 * The independent seeds of one run, all derived from the experiment's `seed`: model
 * initialisation, the training window stream (§A3) and the per-step random context (stochastic
 * rounding, dropout). The paper split one fresh seed into model and batching seeds (§A5); here
 * the seed is given, so that a run can be repeated exactly, and a sweep's repetitions use seed +
 * rep.
 */
export interface RunSeeds {
  readonly model: number;
  readonly batches: number;
  readonly random: number;
}

/** SplitMix32-style avalanche of (seed, purpose) into a uint32. */
function mix(seed: number, purpose: number): number {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(purpose, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export function runSeeds(seed: number): RunSeeds {
  return { model: mix(seed, 1), batches: mix(seed, 2), random: mix(seed, 3) };
}
