/**
 * Host-side pieces of the CUDA backend that need no GPU: dimension collapsing, the injectivity
 * test behind plain vs atomic accumulation, the NVRTC target choice, the quantise grid words, and
 * library discovery through REPRO_CUDA_LIB_DIR.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chooseTarget } from '../../src/backend/cuda/compiler.ts';
import { cudaAvailability, tryCreateCudaBackend } from '../../src/backend/cuda/index.ts';
import { libraryCandidates } from '../../src/backend/cuda/libraries.ts';
import { quantGridWords } from '../../src/backend/cuda/quantise-grid.ts';
import { collapse, contiguousStrides, isInjective, packStrided } from '../../src/backend/cuda/strided.ts';
import { parseFormat } from '../../src/formats/registry.ts';

describe('strided view preparation', () => {
  it('drops size-1 axes and merges axes contiguous in every view', () => {
    const c = collapse([2, 1, 3, 4], [contiguousStrides([2, 1, 3, 4]), [0, 0, 4, 1]]);
    expect(c.shape).toEqual([2, 12]);
    expect(c.strides).toEqual([[12, 1], [0, 1]]);
    expect(c.count).toBe(24);
    const t = collapse([3, 4], [[1, 3], [4, 1]]);
    expect(t.shape).toEqual([3, 4]);
    const words = packStrided(t, 'test');
    expect(Array.from(words.subarray(0, 3))).toEqual([2, 3, 4]);
  });

  it('refuses more dimensions than the kernels index', () => {
    const shape = [2, 2, 2, 2, 2, 2, 2];
    const spread = shape.map((_, d) => 4 ** (shape.length - d));
    expect(() => packStrided(collapse(shape, [spread]), 'test')).toThrow(/at most 6/);
  });

  it('tells distinct destinations from repeated ones', () => {
    expect(isInjective([4, 5], [5, 1])).toBe(true);
    expect(isInjective([4, 5], [1, 4])).toBe(true);
    expect(isInjective([4, 5], [0, 1])).toBe(false);
    expect(isInjective([4, 5], [2, 1])).toBe(false);
    expect(isInjective([1, 5], [0, 1])).toBe(true);
  });
});

describe('NVRTC target', () => {
  it('emits machine code for a known architecture and PTX for a newer GPU', () => {
    expect(chooseTarget([75, 80, 86, 89, 90], 90, '13.0')).toEqual({ option: '--gpu-architecture=sm_90', kind: 'cubin' });
    expect(chooseTarget([75, 80, 90], 100, '12.0')).toEqual({ option: '--gpu-architecture=compute_90', kind: 'ptx' });
    expect(() => chooseTarget([75, 80], 70, '13.0')).toThrow(/cannot compile/);
  });
});

describe('quantise grid words', () => {
  it('encode the paper E4M3 and OCP E4M3 limits as float32 bit patterns', () => {
    const bits = (v: number) => new Int32Array(new Float32Array([v]).buffer)[0]!;
    const paper = quantGridWords(parseFormat('e4m3-paper'), 'saturate');
    expect(Array.from(paper)).toEqual([3, -7, 8, 20, bits(2 ** -7), bits(240), bits(2 ** -10), bits(240), bits(240)]);
    const ocp = quantGridWords(parseFormat('e4m3'), 'inf');
    expect(ocp[5]).toBe(bits(448));
    expect(ocp[7]).toBe(0x7fc00000);
    expect(quantGridWords(parseFormat('e5m2'), 'inf')[7]).toBe(0x7f800000);
  });
});

describe('library discovery', () => {
  const dir = mkdtempSync(join(tmpdir(), 'repro-cuda-lib-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('looks in REPRO_CUDA_LIB_DIR first, versioned sonames included', () => {
    writeFileSync(join(dir, 'libnvrtc.so.13'), '');
    const previous = process.env.REPRO_CUDA_LIB_DIR;
    process.env.REPRO_CUDA_LIB_DIR = dir;
    try {
      const candidates = libraryCandidates('nvrtc');
      expect(candidates[0]).toEqual({ path: join(dir, 'libnvrtc.so.13'), source: 'REPRO_CUDA_LIB_DIR' });
      expect(candidates.at(-1)?.source).toBe('dynamic loader search path');
    } finally {
      if (previous === undefined) delete process.env.REPRO_CUDA_LIB_DIR;
      else process.env.REPRO_CUDA_LIB_DIR = previous;
    }
  });

  it('without a usable GPU, says why in one line instead of throwing', () => {
    const availability = cudaAvailability();
    const backend = tryCreateCudaBackend();
    if (!availability.available) {
      expect(typeof backend).toBe('string');
      expect(availability.reason).not.toContain('\n');
      expect(availability.reason.length).toBeGreaterThan(10);
    } else {
      expect(availability.device.name.length).toBeGreaterThan(0);
    }
  });
});
