import type { FloatFormat } from '../formats/format.ts';
import type { TensorRole } from '../nn/probe.ts';

/** How many of a tensor's values a format would lose. */
export interface FormatFractions {
  /** nonzero values that round to zero: |x| ≤ half the smallest subnormal */
  readonly underflow: number;
  /** values that round beyond the largest finite value (to inf/NaN, or clipped by the
   * saturating paper FP8), and non-finite values */
  readonly overflow: number;
}

export interface TensorStats {
  readonly std: number;
  readonly meanAbs: number;
  readonly maxAbs: number;
  /** fraction of values that are exactly zero (e.g. flushed by an FP16 run) */
  readonly zeros: number;
  readonly formats: Readonly<Record<string, FormatFractions>>;
}

export interface TensorReport extends TensorStats {
  readonly name: string;
  readonly role: TensorRole;
  readonly shape: readonly number[];
}

/** Population statistics in float64 and per-format underflow/overflow fractions. */
export function tensorStats(values: Float32Array, formats: readonly FloatFormat[]): TensorStats {
  const n = values.length;
  const limits = formats.map((f) => {
    // Halfway between the largest finite value and the next step of its binade; an IEEE format
    // rounds that tie to the infinity code (even), the others to the largest value.
    const halfStep = 2 ** (Math.floor(Math.log2(f.maxAbs)) - f.mantissaBits - 1);
    return { name: f.name, underflowAt: f.minSubnormal / 2, tie: f.maxAbs + halfStep, tieOverflows: f.special === 'ieee', underflow: 0, overflow: 0 };
  });
  let sum = 0;
  let sumAbs = 0;
  let maxAbs = 0;
  let zeros = 0;
  let finite = 0;
  for (let i = 0; i < n; i++) {
    const x = values[i];
    const a = Math.abs(x);
    if (!Number.isFinite(x)) {
      for (const l of limits) l.overflow++;
      maxAbs = Number.isNaN(x) ? maxAbs : Infinity;
      continue;
    }
    finite++;
    sum += x;
    sumAbs += a;
    if (a > maxAbs) maxAbs = a;
    if (x === 0) {
      zeros++;
      continue;
    }
    for (const l of limits) {
      if (a <= l.underflowAt) l.underflow++;
      else if (a > l.tie || (a === l.tie && l.tieOverflows)) l.overflow++;
    }
  }
  const mean = finite > 0 ? sum / finite : 0;
  let squares = 0;
  for (let i = 0; i < n; i++) {
    const x = values[i];
    if (Number.isFinite(x)) squares += (x - mean) * (x - mean);
  }
  const fraction = (count: number) => (n > 0 ? count / n : 0);
  return {
    std: finite > 0 ? Math.sqrt(squares / finite) : NaN,
    meanAbs: finite > 0 ? sumAbs / finite : NaN,
    maxAbs,
    zeros: fraction(zeros),
    formats: Object.fromEntries(limits.map((l) => [l.name, { underflow: fraction(l.underflow), overflow: fraction(l.overflow) }])),
  };
}
