import { ReproError } from '../errors.ts';
import { defineFormat, type FloatFormat } from './format.ts';

/**
 * The named formats. `e4m3`/`e5m2` are the OCP FP8 encodings that hardware and PyTorch use; the
 * `-paper` pair is the Graphcore-style FP8 of the paper (bias 2^(E-1), no inf/NaN codes,
 * unit-scaling-ops.md §6.1).
 */
export const NAMED_FORMATS: readonly FloatFormat[] = [
  defineFormat('fp32', { exponentBits: 8, mantissaBits: 23, bias: 127, special: 'ieee' }),
  defineFormat('fp16', { exponentBits: 5, mantissaBits: 10, bias: 15, special: 'ieee' }),
  defineFormat('bf16', { exponentBits: 8, mantissaBits: 7, bias: 127, special: 'ieee' }),
  defineFormat('e4m3', { exponentBits: 4, mantissaBits: 3, bias: 7, special: 'fn' }),
  defineFormat('e5m2', { exponentBits: 5, mantissaBits: 2, bias: 15, special: 'ieee' }),
  defineFormat('e4m3-paper', { exponentBits: 4, mantissaBits: 3, bias: 8, special: 'none' }),
  defineFormat('e5m2-paper', { exponentBits: 5, mantissaBits: 2, bias: 16, special: 'none' }),
];

const CUSTOM_NAME = /^e(\d+)m(\d+)(?:-b(\d+))?$/;

const VALID_NAMES = `${NAMED_FORMATS.map((f) => f.name).join(', ')}, or eXmY / eXmY-bZ (paper family: no inf/NaN, bias 2^(X-1) unless given; e.g. e2m1, e3m0, e5m10-b15)`;

/**
 * The format a name stands for: a named format, or a custom paper-family `eXmY` (bias 2^(X−1))
 * / `eXmY-bZ`. Case-insensitive. Throws ReproError naming the value and the valid names.
 */
export function parseFormat(name: string): FloatFormat {
  const key = name.trim().toLowerCase();
  const named = NAMED_FORMATS.find((f) => f.name === key);
  if (named) return named;
  const custom = CUSTOM_NAME.exec(key);
  if (!custom) throw new ReproError(`unknown number format "${name}": expected ${VALID_NAMES}`);
  const exponentBits = Number(custom[1]);
  const mantissaBits = Number(custom[2]);
  const bias = custom[3] === undefined ? 2 ** (exponentBits - 1) : Number(custom[3]);
  return defineFormat(key, { exponentBits, mantissaBits, bias, special: 'none' });
}
