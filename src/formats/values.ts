import { ReproError } from '../errors.ts';

/**
 * Text forms of single values for the command line: inputs accept decimal/scientific numbers and
 * nan, inf, +inf, -inf (also "infinity"); outputs print the exact value (shortest text that reads
 * back to the same number), keep the sign of −0, and spell non-finite values nan, inf, -inf.
 */

const NON_FINITE: Record<string, number> = {
  nan: NaN,
  '+nan': NaN,
  '-nan': NaN,
  inf: Infinity,
  '+inf': Infinity,
  infinity: Infinity,
  '+infinity': Infinity,
  '-inf': -Infinity,
  '-infinity': -Infinity,
};

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** Parses one value; throws ReproError naming it if it is not a number, nan or ±inf. */
export function parseValueText(text: string): number {
  const key = text.trim().toLowerCase();
  if (key in NON_FINITE) return NON_FINITE[key]!;
  if (!DECIMAL.test(key)) throw new ReproError(`invalid value "${text}": expected a decimal number, nan, inf or -inf`);
  return Number(key);
}

export function formatValueText(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (value === Infinity) return 'inf';
  if (value === -Infinity) return '-inf';
  if (Object.is(value, -0)) return '-0';
  return String(value);
}

/** A JSON array of numbers in order; nan/inf/-inf as strings (JSON has no such numbers). */
export function valuesToJson(values: Iterable<number>): string {
  const items = Array.from(values, (v) => (Number.isFinite(v) ? formatValueText(v) : JSON.stringify(formatValueText(v))));
  return `[${items.join(', ')}]`;
}
