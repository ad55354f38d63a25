import type { FloatFormat, SpecialValues } from './format.ts';
import { NAMED_FORMATS } from './registry.ts';

export interface FormatTableRow {
  readonly name: string;
  readonly bits: number;
  readonly exponentBits: number;
  readonly mantissaBits: number;
  readonly bias: number;
  readonly special: SpecialValues;
  readonly maxAbs: number;
  readonly minNormal: number;
  readonly minSubnormal: number;
  readonly epsilon: number;
}

/** One row per named format (or per format given). */
export function formatTable(formats: readonly FloatFormat[] = NAMED_FORMATS): FormatTableRow[] {
  return formats.map((f) => ({
    name: f.name,
    bits: f.bits,
    exponentBits: f.exponentBits,
    mantissaBits: f.mantissaBits,
    bias: f.bias,
    special: f.special,
    maxAbs: f.maxAbs,
    minNormal: f.minNormal,
    minSubnormal: f.minSubnormal,
    epsilon: f.epsilon,
  }));
}

const SPECIAL_LABEL: Record<SpecialValues, string> = {
  ieee: 'inf+nan',
  fn: 'nan only',
  none: 'none',
};

/** Min normal, min subnormal and epsilon are powers of two: 2^k says more than 6.1e-5. */
function powerOfTwo(value: number): string {
  return `2^${Math.log2(value)}`;
}

/** The table as aligned text, one format per line, with a header. */
export function renderFormatTable(rows: readonly FormatTableRow[]): string {
  const header = ['format', 'bits', 'E', 'M', 'bias', 'specials', 'max', 'min normal', 'min subnormal', 'epsilon'];
  const cells = rows.map((r) => [
    r.name,
    String(r.bits),
    String(r.exponentBits),
    String(r.mantissaBits),
    String(r.bias),
    SPECIAL_LABEL[r.special],
    String(r.maxAbs),
    powerOfTwo(r.minNormal),
    powerOfTwo(r.minSubnormal),
    powerOfTwo(r.epsilon),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c]!.length)));
  const numeric = (c: number): boolean => c >= 1 && c !== 5;
  const line = (row: readonly string[]): string =>
    row
      .map((cell, c) => (numeric(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...cells.map(line)].join('\n');
}
