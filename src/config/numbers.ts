/**
 * Learning rates and decay rates in this project are powers of two, so YAML files and `--set`
 * accept them written that way ("2^-10", "2**-10") as well as plain numbers.
 */
const POWER = /^\s*([+-]?\d+(?:\.\d+)?)\s*(?:\^|\*\*)\s*([+-]?\d+(?:\.\d+)?)\s*$/;
const PLAIN = /^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

/** The number a string spells ("2^-10", "2**-10", "1e-3"), or undefined if it spells none. */
export function parseNumberString(text: string): number | undefined {
  const power = POWER.exec(text);
  if (power) return Number(power[1]) ** Number(power[2]);
  if (PLAIN.test(text)) return Number(text);
  return undefined;
}

/** Numbers pass through; numeric strings become numbers; anything else is returned unchanged. */
export function coerceNumberLike(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  return parseNumberString(value) ?? value;
}
