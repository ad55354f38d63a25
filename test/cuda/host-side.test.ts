/**
 * Host-side pieces of the CUDA backend that need no GPU: dimension collapsing, the injectivity
 * test behind plain vs atomic accumulation, the NVRTC target choice, the quantise grid words, and
 * library discovery through REPRO_CUDA_LIB_DIR, the fused attention kernels' geometry, and the
 * GEMM engine's grouping, k-chunking and 16-bit pack geometry.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chooseTarget } from '../../src/backend/cuda/compiler.ts';
import { cudaAvailability, tryCreateCudaBackend } from '../../src/backend/cuda/index.ts';
import { libraryCandidates } from '../../src/backend/cuda/libraries.ts';
import { quantGridWords } from '../../src/backend/cuda/quantise-grid.ts';
import { collapse, contiguousStrides, divisionMagic, isInjective, packStrided, vectorise } from '../../src/backend/cuda/strided.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import { attentionGeometry, attentionSharedBytes } from '../../src/backend/cuda/kernels/attention.ts';
import { ReproError } from '../../src/errors.ts';
import type { GemmParams } from '../../src/backend/backend.ts';
import { groupByShape, groupChunks, launchPack16 } from '../../src/backend/cuda/gemm.ts';
import { writeWideWords } from '../../src/backend/cuda/launch.ts';

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

  it('replaces division by multiply-shift exactly over the 31-bit index range', () => {
    const divisors = [1, 2, 3, 5, 7, 8, 12, 64, 100, 255, 256, 257, 1000, 3000, 65537, 12345677, 2 ** 30 - 1, 2 ** 30 + 1, 0x7fffffff];
    const dividends = [0, 1, 2, 3, 100, 65535, 65536, 1e6, 123456789, 2 ** 30, 0x7ffffffe, 0x7fffffff];
    for (const d of divisors) {
      const { magic, shift } = divisionMagic(d);
      expect(magic >= 0 && magic < 2 ** 32).toBe(true);
      for (const n of [...dividends, d - 1, d, d + 1, 3 * d - 1].filter((v) => v >= 0 && v <= 0x7fffffff)) {
        const q = magic === 0 ? n : Number(((BigInt(n) * BigInt(magic)) >> 32n) >> BigInt(shift));
        expect(q, `${n} / ${d}`).toBe(Math.floor(n / d));
      }
    }
  });

  it('groups the inner axis by four only when every view allows 16-byte access', () => {
    const c = collapse([6, 8], [[8, 1], [0, 1], [8, 1]]);
    const v = vectorise(c, [0, 64, 1024], [2]);
    expect(v?.collapsed.shape).toEqual([6, 2]);
    expect(v?.collapsed.strides).toEqual([[8, 4], [0, 4], [8, 4]]);
    expect(v?.vectorMask).toBe(7);
    expect(vectorise(collapse([6, 8], [[1, 0], [8, 1]]), [0, 0], [1])?.vectorMask).toBe(2);
    expect(vectorise(c, [4, 64, 1024], [2])).toBeNull();
    expect(vectorise(collapse([5, 6], [[7, 1], [6, 1]]), [0, 0], [1])).toBeNull();
    expect(vectorise(collapse([6, 8], [[1, 6], [8, 1]]), [0, 0], [1])).toBeNull();
    expect(vectorise(collapse([6, 8], [[8, 1], [1, 0]]), [0, 0], [1])).toBeNull();
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

describe('fused attention kernel geometry', () => {
  it('reads REPRO_ATTENTION_ROWS_PER_THREAD on first use and refuses values other than 2 and 4 with a one-line input error', () => {
    const before = process.env.REPRO_ATTENTION_ROWS_PER_THREAD;
    try {
      process.env.REPRO_ATTENTION_ROWS_PER_THREAD = '3';
      expect(() => attentionGeometry()).toThrow(ReproError);
      process.env.REPRO_ATTENTION_ROWS_PER_THREAD = '4';
      expect(attentionGeometry()).toEqual({ rowsPerThread: 4, blockRows: 64 });
      expect(attentionSharedBytes(64, 'grad_q')).toBe(4 * (2 * 64 * 68 + 2 * 32 * 68));
    } finally {
      if (before === undefined) delete process.env.REPRO_ATTENTION_ROWS_PER_THREAD;
      else process.env.REPRO_ATTENTION_ROWS_PER_THREAD = before;
    }
  });
});

describe('GEMM host decisions (no GPU needed)', () => {
  const product = (over: Partial<GemmParams>): GemmParams => {
    const storage = { size: 1 << 20, dtype: 'f32' } as unknown as GemmParams['a'];
    return {
      transA: true, transB: false, m: 128, n: 384, k: 2048, alpha: 1, beta: 0, a: storage, aOffset: 0, lda: 128,
      b: storage, bOffset: 0, ldb: 384, c: storage, cOffset: 0, ldc: 384, batch: 1, strideA: 0, strideB: 0, strideC: 0, ...over,
    };
  };

  it('groupByShape keeps first-appearance order, groups equal shapes and factors, leaves the rest alone', () => {
    const a1 = product({});
    const b1 = product({ n: 512, ldb: 512, ldc: 512 });
    const a2 = product({ aOffset: 7 });
    const lone = product({ beta: 1 });
    const refused = product({ m: 7 });
    const groups = groupByShape([a1, b1, refused, a2, lone], (p) => p.m !== 7);
    expect(groups).toEqual([[a1, a2], [b1], [refused], [lone]]);
  });

  it('writeWideWords lays 64-bit values out as (low, high) 32-bit pairs', () => {
    const words = new Int32Array(7).fill(-1);
    writeWideWords(words, [0x7f12_3456_789a, 3, 2 ** 32], 1);
    expect(Array.from(words)).toEqual([-1, 0x3456789a, 0x7f12, 3, 0, 0, 1]);
    const high = new Int32Array(2);
    writeWideWords(high, [0xffff_ffff]);
    expect(Array.from(high)).toEqual([-1, 0]);
  });

  it('groupChunks cuts k into 4 or 2 chunks of at least 256', () => {
    expect(groupChunks(2048)).toBe(4);
    expect(groupChunks(1024)).toBe(4);
    expect(groupChunks(512)).toBe(2);
    expect(groupChunks(300)).toBe(1);
    expect(groupChunks(2050)).toBe(2);
  });

  it('16-bit packs: float4 rows where cols, strides and addresses allow, a power of two of threads per row', () => {
    const launches: (number | Int32Array)[][] = [];
    let counted = 0;
    const host = {
      kernel: () => ({}) as never,
      launchLinear: (_kernel: unknown, count: number, args: readonly (number | Int32Array)[]) => {
        counted = count;
        launches.push([...args]);
      },
    };
    const source = { address: 4096, rows: 8192, cols: 512, ld: 512, strides: [0, 0] as [number, number], batch1: 1, batches: 1 };
    launchPack16(host, 'pack_bf16', source, 8192);
    // vec, laneShift: 128 float4 groups a row → 128 threads.
    expect(launches[0]!.slice(-2)).toEqual([1, 7]);
    expect(counted).toBe(8192 * 128);
    launchPack16(host, 'pack_f16', { ...source, cols: 33, ld: 40 }, 8192);
    expect(launches[1]!.slice(-2)).toEqual([0, 6]);
    launchPack16(host, 'pack_f16', { ...source, address: 4100 }, 8192);
    expect(launches[2]!.slice(-2)).toEqual([0, 8]);
    launchPack16(host, 'pack_f16', { ...source, rows: 0 }, 8192);
    expect(launches).toHaveLength(3);
  });
});
