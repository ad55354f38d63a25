/** Three significant digits, exponent notation outside [1e-3, 1e4). */
export function formatValue(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e-3 && a < 1e4 ? x.toPrecision(3) : x.toExponential(2);
}

/** A fraction as a percentage with two significant digits ("0" when none). */
export function formatFraction(f: number): string {
  if (f === 0) return '0';
  return `${Number((f * 100).toPrecision(2))}%`;
}
