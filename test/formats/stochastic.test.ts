import { describe, expect, it } from 'vitest';
import { quantise, type QuantiseOptions } from '../../src/formats/quantise.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import { fillRandomBits } from '../../src/tensor/philox.ts';
import { buildOracle } from './oracle.ts';

function sr(name: string, src: Float32Array, options: Partial<QuantiseOptions> = {}): Float32Array {
  const out = new Float32Array(src.length);
  quantise(src, out, parseFormat(name), { rounding: 'stochastic', overflow: 'saturate', seed: 1, ...options });
  return out;
}

/** Mean of n stochastic casts of x, and the standard error expected of that mean. */
function castMean(name: string, x: number, n: number, seed: number): { mean: number; lo: number; hi: number; sigma: number; outside: number } {
  const out = sr(name, new Float32Array(n).fill(x), { seed });
  const { lo, hi } = buildOracle(parseFormat(name)).neighbours(Math.abs(x));
  const sign = Math.sign(x);
  let sum = 0;
  let outside = 0;
  for (const v of out) {
    sum += v;
    if (v !== sign * lo && v !== sign * hi) outside++;
  }
  const p = (Math.abs(x) - lo) / (hi - lo || 1);
  return { mean: sum / n, lo, hi, sigma: ((hi - lo) * Math.sqrt(p * (1 - p))) / Math.sqrt(n), outside };
}

describe('stochastic rounding', () => {
  it('E2M1: -1.35 → -1.5 with probability 0.7 (within 3σ), otherwise -1', () => {
    const n = 20000;
    const out = sr('e2m1', new Float32Array(n).fill(-1.35), { seed: 5 });
    const ups = out.filter((v) => v === -1.5).length;
    expect(out.every((v) => v === -1.5 || v === -1)).toBe(true);
    expect(Math.abs(ups / n - 0.7)).toBeLessThan(3 * Math.sqrt((0.7 * 0.3) / n));
  });

  it.each([
    ['e4m3-paper', 1.3],
    ['e4m3-paper', -77.7],
    ['e4m3-paper', 0.3 * 2 ** -10], // below the smallest subnormal (shift 25)
    ['e4m3-paper', 1.7 * 2 ** -10], // subnormal range
    ['e5m2-paper', 3e-6],
    ['e5m2', 1e-3],
    ['e4m3', 200.5],
    ['e3m0', 3.3],
    ['e4m3-paper', 3e-6], // shift 32
    ['e4m3-paper', 7e-7], // far below the smallest subnormal: shift > 32
    ['fp16', 0.1],
    ['bf16', 1.2345],
  ])('%s(%f) is unbiased and always a neighbour', (name, x) => {
    const stats = castMean(name, Math.fround(x), 40000, 17);
    expect(stats.outside).toBe(0);
    expect(Math.abs(stats.mean - Math.fround(x))).toBeLessThanOrEqual(4 * stats.sigma);
  });

  it('values on the grid stay put', () => {
    const grid = new Float32Array([0, -0, 1, -1.5, 240, 2 ** -10, -(2 ** -7)]);
    const out = sr('e4m3-paper', grid, { seed: 9 });
    expect(Array.from(out, (v, i) => Object.is(v, grid[i]))).toEqual(new Array(grid.length).fill(true));
  });

  it('follows the documented recipe: add the low (23 − M) bits of word offset + j, then truncate', () => {
    const n = 5000;
    const src = new Float32Array(n);
    for (let i = 0; i < n; i++) src[i] = (i % 2 ? -1 : 1) * (0.02 + 100 * Math.abs(Math.sin(i)));
    const out = sr('e4m3-paper', src, { seed: 123, stream: 4, offset: 77, epoch: 3 });
    const words = new Uint32Array(n);
    fillRandomBits(words, 123, 4, 77, 3);
    const srcBits = new Uint32Array(src.buffer);
    const outBits = new Uint32Array(out.buffer);
    const mask = (1 << 20) - 1;
    let mismatches = 0;
    for (let i = 0; i < n; i++) {
      const a = srcBits[i]! & 0x7fffffff;
      const expected = ((srcBits[i]! & 0x80000000) | ((a + (words[i]! & mask)) & ~mask)) >>> 0;
      if (outBits[i] !== expected) mismatches++;
    }
    expect(mismatches).toBe(0);
  });

  it('is deterministic per (seed, stream, offset) and a sub-range reproduces the whole', () => {
    const src = new Float32Array(10000).map((_, i) => Math.sin(i) * 10);
    const a = sr('e5m2-paper', src, { seed: 3, stream: 2 });
    const b = sr('e5m2-paper', src, { seed: 3, stream: 2 });
    expect(Array.from(b)).toEqual(Array.from(a));
    const part = sr('e5m2-paper', src.slice(4321, 9000), { seed: 3, stream: 2, offset: 4321 });
    expect(Array.from(part)).toEqual(Array.from(a.subarray(4321, 9000)));
    const otherSeed = sr('e5m2-paper', src, { seed: 4, stream: 2 });
    const otherStream = sr('e5m2-paper', src, { seed: 3, stream: 5 });
    expect(Array.from(otherSeed)).not.toEqual(Array.from(a));
    expect(Array.from(otherStream)).not.toEqual(Array.from(a));
  });

  it('overflow: saturate keeps ±max, inf lets E5M2 go to inf and E4M3FN to NaN', () => {
    const near = new Float32Array(2000).fill(57344 + 4000);
    expect(sr('e5m2', near).every((v) => v === 57344)).toBe(true);
    const inf = sr('e5m2', near, { overflow: 'inf' });
    expect(inf.some((v) => v === Infinity) && inf.some((v) => v === 57344)).toBe(true);
    const fn = sr('e4m3', new Float32Array(2000).fill(470), { overflow: 'inf' });
    expect(fn.some(Number.isNaN) && fn.some((v) => v === 448)).toBe(true);
    expect(Array.from(sr('e4m3-paper', new Float32Array([Infinity, -Infinity, NaN])))).toEqual([240, -240, NaN]);
  });

  it('needs a seed', () => {
    expect(() => quantise(new Float32Array(1), new Float32Array(1), parseFormat('e2m1'), { rounding: 'stochastic', overflow: 'saturate' })).toThrow(/seed/);
  });
});
