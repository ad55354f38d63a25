import { describe, expect, it } from 'vitest';
import { fillNormal, fillRandomBits, fillUniform, philox4x32, wordToUniform } from '../src/tensor/philox.ts';

const hex = (words: Uint32Array): string => Array.from(words, (w) => w.toString(16).padStart(8, '0')).join(' ');

describe('philox4x32 (Random123 known answers)', () => {
  it('counter 0, key 0', () => {
    expect(hex(philox4x32([0, 0, 0, 0], [0, 0]))).toBe('6627e8d5 e169c58d bc57ac4c 9b00dbd8');
  });
  it('counter and key all ones', () => {
    const ones = 0xffffffff;
    expect(hex(philox4x32([ones, ones, ones, ones], [ones, ones]))).toBe('408f276d 41c83b0e a20bc7c6 6d5451fd');
  });
  it('counter and key from the digits of pi', () => {
    const counter = Uint32Array.of(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344);
    const key = Uint32Array.of(0xa4093822, 0x299f31d0);
    expect(hex(philox4x32(counter, key))).toBe('d16cfe09 94fdcceb 5001e420 24126ea1');
  });
  it('rejects a counter or key of the wrong length', () => {
    expect(() => philox4x32([0, 0, 0], [0, 0])).toThrow(/4-word counter/);
  });
});

describe('stream layout', () => {
  it('element i is word i % 4 of the block (floor(i/4) lo, floor(i/4) hi, stream, epoch)', () => {
    const seed = 2 ** 40 + 12345;
    const key = [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
    const stream = 0xdeadbeef;
    const epoch = 7;
    const offset = 4 * 2 ** 33 + 2; // block index above 2^32 exercises the high counter word
    const words = new Uint32Array(11);
    fillRandomBits(words, seed, stream, offset, epoch);
    for (let j = 0; j < words.length; j++) {
      const i = offset + j;
      const b = Math.floor(i / 4);
      const expected = philox4x32([b % 2 ** 32, Math.floor(b / 2 ** 32), stream, epoch], key)[i % 4];
      expect(words[j]).toBe(expected);
    }
  });

  it('regenerates any sub-range identically', () => {
    const all = new Uint32Array(50);
    fillRandomBits(all, 3, 1);
    const part = new Uint32Array(21);
    fillRandomBits(part, 3, 1, 7);
    expect(Array.from(part)).toEqual(Array.from(all.subarray(7, 28)));
  });

  it('seed, stream and epoch each change the numbers', () => {
    const base = new Uint32Array(8);
    fillRandomBits(base, 1, 1, 0, 0);
    for (const [seed, stream, epoch] of [
      [2, 1, 0],
      [1, 2, 0],
      [1, 1, 1],
      [1 + 2 ** 32, 1, 0],
    ] as const) {
      const other = new Uint32Array(8);
      fillRandomBits(other, seed, stream, 0, epoch);
      expect(Array.from(other)).not.toEqual(Array.from(base));
    }
  });

  it('rejects seeds and streams outside their ranges', () => {
    const out = new Uint32Array(1);
    expect(() => fillRandomBits(out, -1, 0)).toThrow(/seed/);
    expect(() => fillRandomBits(out, 1.5, 0)).toThrow(/seed/);
    expect(() => fillRandomBits(out, 2 ** 53, 0)).toThrow(/seed/);
    expect(() => fillRandomBits(out, 0, 2 ** 32)).toThrow(/stream/);
  });
});

describe('uniform', () => {
  it('maps words to (2k+1)·2^-24, exact in float32, never 0 or 1', () => {
    expect(wordToUniform(0)).toBe(2 ** -24);
    expect(wordToUniform(0xffffffff)).toBe(1 - 2 ** -24);
    expect(Math.fround(wordToUniform(0xffffffff))).toBeLessThan(1);
    expect(wordToUniform(0x80000000)).toBe(0.5 + 2 ** -24);
    expect(wordToUniform(0x12345678)).toBe(Math.fround(wordToUniform(0x12345678)));
  });

  it('fills from the same words as fillRandomBits and has mean 1/2, variance 1/12', () => {
    const n = 1 << 16;
    const u = new Float32Array(n);
    const words = new Uint32Array(n);
    fillUniform(u, 42, 5, 3);
    fillRandomBits(words, 42, 5, 3);
    let sum = 0;
    let sumSq = 0;
    let mismatches = 0;
    for (let j = 0; j < n; j++) {
      if (u[j] !== wordToUniform(words[j]!)) mismatches++;
      sum += u[j]!;
      sumSq += u[j]! * u[j]!;
    }
    expect(mismatches).toBe(0);
    const mean = sum / n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(4 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(sumSq / n - mean * mean - 1 / 12)).toBeLessThan(0.002);
  });
});

describe('normal', () => {
  it('is Box–Muller on element pairs (2j, 2j+1)', () => {
    const z = new Float32Array(6);
    fillNormal(z, 9, 4);
    const u = new Float32Array(6);
    fillUniform(u, 9, 4);
    for (let p = 0; p < 6; p += 2) {
      const r = Math.sqrt(-2 * Math.log(u[p]!));
      expect(z[p]).toBe(Math.fround(r * Math.cos(2 * Math.PI * u[p + 1]!)));
      expect(z[p + 1]).toBe(Math.fround(r * Math.sin(2 * Math.PI * u[p + 1]!)));
    }
  });

  it('regenerates odd-offset sub-ranges identically, across chunk boundaries', () => {
    const all = new Float32Array(9001);
    fillNormal(all, 11, 2, 0, 0.5, 3);
    const part = new Float32Array(5000);
    fillNormal(part, 11, 2, 3001, 0.5, 3);
    expect(Array.from(part)).toEqual(Array.from(all.subarray(3001, 8001)));
    const single = new Float32Array(1);
    fillNormal(single, 11, 2, 4096, 0.5, 3);
    expect(single[0]).toBe(all[4096]);
  });

  it('has the requested mean and std', () => {
    const n = 1 << 17;
    const z = new Float32Array(n);
    fillNormal(z, 1234, 0, 0, 2, 3);
    let sum = 0;
    let sumSq = 0;
    for (const v of z) {
      sum += v;
      sumSq += v * v;
    }
    const mean = sum / n;
    const std = Math.sqrt(sumSq / n - mean * mean);
    expect(Math.abs(mean - 2)).toBeLessThan(4 * (3 / Math.sqrt(n)));
    expect(Math.abs(std - 3)).toBeLessThan(0.03);
  });
});
