import * as T from '../../../tensor/index.ts';

/**
 * The fixed sinusoid table S[t, f] = sin(ω_f·t + φ_f) for t < length, f < frequencies, with
 * ω_f = π·(2/P)^((f div 2)/(F/2 − 1)) and φ_f = (π/2)·(f mod 2): sin/cos pairs with periods from 2
 * to P = maxPeriod positions (experiments.md §A4). Row-major [length, frequencies].
 */
export function sinusoidTable(length: number, frequencies: number, maxPeriod: number): Float32Array {
  const table = new Float32Array(length * frequencies);
  const pairs = frequencies / 2;
  for (let f = 0; f < frequencies; f++) {
    const omega = Math.PI * (2 / maxPeriod) ** (Math.floor(f / 2) / (pairs - 1));
    const phase = (Math.PI / 2) * (f % 2);
    for (let t = 0; t < length; t++) table[t * frequencies + f] = Math.sin(omega * t + phase);
  }
  return table;
}

/** The table's rows in reverse order (row t′ holds distance L−1−t′), times `scale`. */
export function reversedSinusoids(length: number, frequencies: number, maxPeriod: number, scale: number): Float32Array {
  const table = sinusoidTable(length, frequencies, maxPeriod);
  const out = new Float32Array(table.length);
  for (let t = 0; t < length; t++) {
    for (let f = 0; f < frequencies; f++) out[t * frequencies + f] = scale * table[(length - 1 - t) * frequencies + f];
  }
  return out;
}

/**
 * Relative shift: given r′[.., i, t′] = q_i·E[L−1−t′] (scores against the reversed position
 * embeddings), returns logits[.., i, j] = r[.., i, i−j] = r′[.., i, L−1−i+j] for j ≤ i as one
 * strided copy (row stride L−1, offset L−1). Entries j > i read neighbouring values and must be
 * masked by the caller.
 */
export function relativeShift(reversedScores: T.Tensor): T.Tensor {
  const shape = reversedScores.shape;
  const L = shape[shape.length - 1];
  if (shape[shape.length - 2] !== L) throw new Error(`relativeShift: expected [.., L, L], got ${reversedScores.describe()}`);
  const lead = shape.slice(0, -2);
  const leadStrides = lead.map((_, i) => lead.slice(i + 1).reduce((p, d) => p * d, 1) * L * L);
  return T.asStrided(reversedScores, shape, [...leadStrides, L - 1, 1], L - 1);
}
