/**
 * The number-format facts the CUDA GEMM paths rely on, checked by enumerating every code:
 * - every FP8 value (paper and OCP, E4M3 and E5M2) is exactly an IEEE fp16 value, so FP8
 *   products can run on FP16 tensor cores without changing any input;
 * - the paper's E4M3 is NOT a subset of OCP E4M3: below 2^-6 the paper keeps a 2^-10 grid that
 *   OCP's subnormals (spacing 2^-9) lack, so a native FP8 GEMM is exact only for OCP values.
 */
import { describe, expect, it } from 'vitest';
import { decodeCode } from '../../src/formats/codes.ts';
import type { FloatFormat } from '../../src/formats/format.ts';
import { quantise } from '../../src/formats/quantise.ts';
import { parseFormat } from '../../src/formats/registry.ts';

function finiteValues(format: FloatFormat): number[] {
  const values: number[] = [];
  for (let code = 0; code < 2 ** format.bits; code++) {
    const v = decodeCode(code, format);
    if (Number.isFinite(v)) values.push(v);
  }
  return values;
}

function representable(values: readonly number[], format: FloatFormat): boolean[] {
  const x = Float32Array.from(values);
  const y = new Float32Array(x.length);
  quantise(x, y, format, { rounding: 'nearest', overflow: 'inf' });
  return values.map((v, i) => Object.is(y[i], v) || y[i] === v);
}

describe('FP8 formats and the CUDA GEMM paths', () => {
  const fp16 = parseFormat('fp16');

  for (const name of ['e4m3', 'e5m2', 'e4m3-paper', 'e5m2-paper']) {
    it(`every ${name} value is exactly an fp16 value`, () => {
      const values = finiteValues(parseFormat(name));
      expect(values.length).toBeGreaterThan(200);
      expect(representable(values, fp16).every(Boolean)).toBe(true);
    });
  }

  it('the paper E4M3 values missing from OCP E4M3 are exactly the odd multiples of 2^-10 below 2^-6', () => {
    const paper = finiteValues(parseFormat('e4m3-paper'));
    const fits = representable(paper, parseFormat('e4m3'));
    const missing = paper.filter((_, i) => !fits[i]).filter((v) => v > 0).sort((a, b) => a - b);
    const expected: number[] = [];
    for (let k = 1; k < 16; k += 2) expected.push(k * 2 ** -10);
    expect(missing).toEqual(expected);
  });
});
