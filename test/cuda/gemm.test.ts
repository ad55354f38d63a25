/**
 * cuBLAS GEMM paths against the CPU twin's FP32 GEMM.
 * Tolerance (accumulation order): a float32 dot product of k terms may differ from another
 * summation order by up to about k·2^-24 of Σ|a·b|, so each element is allowed
 * 1e-5·|α|·Σ_p|a_ip·b_pj| + 1e-5·|β·c| (k ≤ 128 here). The low-precision paths get inputs already
 * quantised to their format, whose products are exact in float32: the same bound applies.
 * Native FP8 on Hopper accumulates inside the tensor core with fewer bits (about 14 per k-block,
 * DeepSeek-V3 report §3.3.2), so it is allowed 2^-10·Σ|a·b|.
 */
import { describe, expect, it } from 'vitest';
import type { GemmParams, Storage } from '../../src/backend/backend.ts';
import { CpuBackend } from '../../src/backend/cpu/index.ts';
import { tryCreateCudaBackend } from '../../src/backend/cuda/index.ts';
import { defineFormat, type FloatFormat, type FormatEncoding } from '../../src/formats/format.ts';
import { quantise } from '../../src/formats/quantise.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import { cuda, noCudaReason, runOn, testValues } from './helpers.ts';

type Format = NonNullable<GemmParams['inputFormat']>;

interface Case {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  batch: number;
  /** Extra columns of padding on each leading dimension. */
  pad: number;
  offsets: number;
  broadcastA?: boolean;
  broadcastB?: boolean;
  alpha: number;
  beta: number;
}

interface Prepared {
  params: Omit<GemmParams, 'a' | 'b' | 'c'>;
  a: Float32Array;
  b: Float32Array;
  c: Float32Array;
}

function prepare(t: Case, seed: number, format?: FormatEncoding): Prepared {
  const [aRows, aCols] = t.transA ? [t.k, t.m] : [t.m, t.k];
  const [bRows, bCols] = t.transB ? [t.n, t.k] : [t.k, t.n];
  const lda = aCols + t.pad, ldb = bCols + t.pad, ldc = t.n + t.pad;
  const strideA = t.broadcastA ? 0 : aRows * lda + t.pad;
  const strideB = t.broadcastB ? 0 : bRows * ldb + t.pad;
  const strideC = t.m * ldc + t.pad;
  const size = (rows: number, ld: number, stride: number) => t.offsets + (t.batch - 1) * stride + rows * ld;
  const a = testValues(size(aRows, lda, strideA), seed);
  const b = testValues(size(bRows, ldb, strideB), seed + 1);
  const c = testValues(size(t.m, ldc, strideC), seed + 2);
  if (format) {
    quantise(a, a, format, { rounding: 'nearest', overflow: 'saturate' });
    quantise(b, b, format, { rounding: 'nearest', overflow: 'saturate' });
  }
  return {
    params: {
      transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha, beta: t.beta,
      aOffset: t.offsets, lda, bOffset: t.offsets, ldb, cOffset: t.offsets, ldc,
      batch: t.batch, strideA, strideB, strideC,
    },
    a, b, c,
  };
}

/** Per-element allowance |α|·Σ|a·b|·rel + |β·c|·1e-5; NaN where C is outside every matrix. */
function allowance(p: Prepared, rel: number): Float64Array {
  const q = p.params;
  const out = new Float64Array(p.c.length);
  for (let bi = 0; bi < q.batch; bi++) {
    for (let i = 0; i < q.m; i++) {
      for (let j = 0; j < q.n; j++) {
        let s = 0;
        for (let l = 0; l < q.k; l++) {
          const av = p.a[q.aOffset + bi * q.strideA + (q.transA ? l * q.lda + i : i * q.lda + l)]!;
          const bv = p.b[q.bOffset + bi * q.strideB + (q.transB ? j * q.ldb + l : l * q.ldb + j)]!;
          s += Math.abs(av * bv);
        }
        const ci = q.cOffset + bi * q.strideC + i * q.ldc + j;
        out[ci] = rel * Math.abs(q.alpha) * s + (q.beta === 0 ? 0 : 1e-5 * Math.abs(q.beta * p.c[ci]!)) + 1e-30;
      }
    }
  }
  return out;
}

function runGemm(backend: CpuBackend | NonNullable<typeof cuda>, p: Prepared, format?: Format): Float32Array {
  return runOn(backend, { a: p.a, b: p.b, c: p.c }, (s: Record<string, Storage>) => {
    backend.gemm({ ...p.params, a: s.a!, b: s.b!, c: s.c!, inputFormat: format });
  }, ['c']).c as Float32Array;
}

function expectWithin(gpu: Float32Array, cpu: Float32Array, bound: Float64Array, untouched: Float32Array, label: string): void {
  const bad: string[] = [];
  let count = 0;
  for (let i = 0; i < cpu.length; i++) {
    // Elements outside every C matrix (padding) must be left exactly as they were.
    const limit = bound[i] === 0 ? 0 : bound[i]!;
    const ok = bound[i] === 0 ? Object.is(gpu[i], untouched[i]) && Object.is(cpu[i], untouched[i]) : Math.abs(gpu[i]! - cpu[i]!) <= limit;
    if (!ok) {
      count++;
      if (bad.length < 5) bad.push(`[${i}] gpu ${gpu[i]} cpu ${cpu[i]} allowed ${limit}`);
    }
  }
  expect(count === 0 ? '' : `${label}: ${count} elements off: ${bad.join('; ')}`).toBe('');
}

const cpuBackend = new CpuBackend();
const base = { m: 37, n: 29, k: 53, batch: 1, pad: 3, offsets: 5, alpha: 0.7, beta: 0.3 };
const TRANSPOSES = [[false, false], [true, false], [false, true], [true, true]] as const;

describe.skipIf(!cuda)(`CUDA GEMM ${noCudaReason}`, () => {
  const gpu = cuda!;
  // The shapes here are small enough for gemm_small; a second backend runs them on cuBLAS
  // (created on first use: this body also runs, for collection only, where there is no GPU).
  let cublasBackend: NonNullable<typeof cuda> | null = null;
  const cublasOnly = (): NonNullable<typeof cuda> => {
    if (!cublasBackend) {
      const created = tryCreateCudaBackend({ smallGemms: false });
      if (typeof created === 'string') throw new Error(created);
      cublasBackend = created;
    }
    return cublasBackend;
  };
  const paths = [['gemm_small', () => gpu], ['cuBLAS', cublasOnly]] as const;

  it('small products run on gemm_small by default and on cuBLAS when it is turned off', () => {
    const p = prepare({ ...base, transA: false, transB: false }, 200);
    const plainBackend = cublasOnly();
    const [small, plain] = [gpu.gemmEngine.counts.small, plainBackend.gemmEngine.counts.small];
    const fp32 = plainBackend.gemmEngine.counts.fp32;
    runGemm(gpu, p);
    runGemm(plainBackend, p);
    expect(gpu.gemmEngine.counts.small).toBe(small + 1);
    expect(plainBackend.gemmEngine.counts.small).toBe(plain);
    expect(plainBackend.gemmEngine.counts.fp32).toBe(fp32 + 1);
  });

  it.each([
    ['fp32', undefined, 0.3],
    ['fp32, beta 0', undefined, 0],
  ] as const)('batched FP32 products with few outputs over a long k split k into chunks (%s)', (_label, format, beta) => {
    // A per-head weight gradient: op(A) = Aᵀ with A stored k×m, B stored k×n, every batch entry
    // contiguous. k = 2048: a float32 sum of that many terms in another order may differ by about
    // k·2^-24 of Σ|a·b| in the worst case; allowed 2e-4 of it.
    const backend = cublasOnly();
    const t: Case = { transA: true, transB: false, m: 200, n: 64, k: 2048, batch: 2, pad: 0, offsets: 5, alpha: 0.6, beta };
    const p = prepare(t, 300, format ? parseFormat(format) : undefined);
    const before = backend.gemmEngine.counts.splitK;
    const gpuC = runGemm(backend, p, format);
    expect(backend.gemmEngine.counts.splitK).toBe(before + 1);
    expectWithin(gpuC, runGemm(cpuBackend, p), allowance(p, 2e-4), p.c, `split k ${_label}`);
    // Padded batch strides cannot merge with the chunk strides, and 16-bit products stay whole.
    runGemm(backend, prepare({ ...t, pad: 2 }, 301));
    runGemm(backend, prepare(t, 302, parseFormat('fp16')), 'fp16');
    expect(backend.gemmEngine.counts.splitK).toBe(before + 1);
  });

  it('gemms packs a 16-bit operand that several products read once, with the results of separate calls', () => {
    // A linear's backward: dX = g·W and dW = gᵀ·X both read g, as stored.
    const backend = cublasOnly();
    const [rows, inner, outer] = [96, 64, 80];
    const bf16 = parseFormat('bf16');
    const rounded = (n: number, seed: number) => {
      const values = testValues(n, seed);
      quantise(values, values, bf16, { rounding: 'nearest', overflow: 'saturate' });
      return values;
    };
    const buffers = { g: rounded(rows * outer, 31), w: rounded(outer * inner, 32), x: rounded(rows * inner, 33), dx: new Float32Array(rows * inner), dw: new Float32Array(outer * inner) };
    const products = (s: Record<string, Storage>): GemmParams[] => [
      { transA: false, transB: false, m: rows, n: inner, k: outer, alpha: 0.5, a: s.g!, aOffset: 0, lda: outer, b: s.w!, bOffset: 0, ldb: inner, beta: 0, c: s.dx!, cOffset: 0, ldc: inner, batch: 1, strideA: 0, strideB: 0, strideC: 0, inputFormat: 'bf16' },
      { transA: true, transB: false, m: outer, n: inner, k: rows, alpha: 0.25, a: s.g!, aOffset: 0, lda: outer, b: s.x!, bOffset: 0, ldb: inner, beta: 0, c: s.dw!, cOffset: 0, ldc: inner, batch: 1, strideA: 0, strideB: 0, strideC: 0, inputFormat: 'bf16' },
    ];
    const before = backend.gemmEngine.counts.packs;
    const together = runOn(backend, buffers, (s) => backend.gemms(products(s)), ['dx', 'dw']);
    expect(backend.gemmEngine.counts.packs - before).toBe(3);
    const separate = runOn(backend, buffers, (s) => products(s).forEach((p) => backend.gemm(p)), ['dx', 'dw']);
    expect(backend.gemmEngine.counts.packs - before).toBe(7);
    expect(Array.from(together.dx!)).toEqual(Array.from(separate.dx!));
    expect(Array.from(together.dw!)).toEqual(Array.from(separate.dw!));
  });

  it.each(paths)('fp32 (%s): every transpose, padded leading dimensions, offsets, alpha and beta', (_path, backendOf) => {
    const backend = backendOf();
    for (const [transA, transB] of TRANSPOSES) {
      const p = prepare({ ...base, transA, transB }, 201);
      expectWithin(runGemm(backend, p), runGemm(cpuBackend, p), allowance(p, 1e-5), p.c, `sgemm ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`);
    }
  });

  it.each(paths)('fp32 (%s): batched with strides, broadcast operands (stride 0) and beta 0 over NaN', (_path, backendOf) => {
    const backend = backendOf();
    for (const [transA, transB] of TRANSPOSES) {
      for (const broadcast of [{}, { broadcastA: true }, { broadcastB: true }]) {
        const p = prepare({ ...base, transA, transB, batch: 3, ...broadcast }, 211);
        expectWithin(runGemm(backend, p), runGemm(cpuBackend, p), allowance(p, 1e-5), p.c, `batched ${JSON.stringify(broadcast)}`);
      }
    }
    const p = prepare({ ...base, transA: false, transB: false, batch: 2, beta: 0 }, 221);
    p.c.fill(NaN);
    const out = runGemm(backend, p);
    const expected = runGemm(cpuBackend, p);
    expectWithin(out, expected, allowance(p, 1e-5), p.c, 'beta 0 overwrites NaN');
  });

  it('k = 0 and alpha = 0 scale C by beta', () => {
    for (const t of [{ ...base, k: 0 }, { ...base, alpha: 0 }]) {
      const p = prepare({ ...t, transA: false, transB: true, batch: 2 }, 231);
      expectWithin(runGemm(gpu, p), runGemm(cpuBackend, p), allowance(p, 1e-5), p.c, `k=${t.k} alpha=${t.alpha}`);
    }
  });

  const lowPrecision: { format: Format; encoding: FloatFormat }[] = [
    { format: 'tf32', encoding: defineFormat('tf32', { exponentBits: 8, mantissaBits: 10, bias: 127, special: 'ieee' }) },
    { format: 'fp16', encoding: parseFormat('fp16') },
    { format: 'bf16', encoding: parseFormat('bf16') },
    { format: 'e4m3', encoding: parseFormat('e4m3-paper') },
    { format: 'e4m3', encoding: parseFormat('e4m3') },
    { format: 'e5m2', encoding: parseFormat('e5m2-paper') },
  ];
  for (const { format, encoding } of lowPrecision) {
    it(`${format} inputs (quantised to ${encoding.name}) equal the fp32 product up to accumulation order`, () => {
      for (const [path, backendOf] of paths) {
        const backend = backendOf();
        for (const [transA, transB] of TRANSPOSES) {
          const p = prepare({ ...base, transA, transB, batch: 2, broadcastB: transA }, 241, encoding);
          const bound = allowance(p, 1e-5);
          expectWithin(runGemm(backend, p, format), runGemm(cpuBackend, p), bound, p.c, `${path} ${format} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`);
        }
      }
    });
  }

  for (const format of ['fp16', 'bf16'] as const) {
    it(`${format} with roundInputs: off-grid operands give the product of the rounded operands, on both paths, like the CPU`, () => {
      for (const [path, backendOf] of paths) {
        const backend = backendOf();
        for (const [transA, transB] of TRANSPOSES) {
          const p = prepare({ ...base, transA, transB, batch: 2, broadcastB: transA }, 263);
          const rounded = { ...p, a: Float32Array.from(p.a), b: Float32Array.from(p.b) };
          quantise(rounded.a, rounded.a, parseFormat(format), { rounding: 'nearest', overflow: 'inf' });
          quantise(rounded.b, rounded.b, parseFormat(format), { rounding: 'nearest', overflow: 'inf' });
          const run = (b: CpuBackend | NonNullable<typeof cuda>, q: Prepared, roundInputs: boolean) =>
            runOn(b, { a: q.a, b: q.b, c: q.c }, (st: Record<string, Storage>) => b.gemm({ ...q.params, a: st.a!, b: st.b!, c: st.c!, inputFormat: format, roundInputs }), ['c']).c as Float32Array;
          const label = `${path} ${format} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
          // On cuBLAS, bit for bit the product of pre-rounded operands (the default backend sends
          // small pre-rounded products to gemm_small, another summation order)…
          if (path === 'cuBLAS') expect(run(backend, p, true), label).toEqual(run(backend, rounded, false));
          // …and the CPU's rounded product up to accumulation order.
          expectWithin(run(backend, p, true), run(cpuBackend, p, true), allowance(rounded, 1e-5), p.c, label);
        }
      }
    });
  }

  it('a mixed E5M2 × E4M3 product tagged e5m2 (as the engine does for backward GEMMs) is exact', () => {
    const p = prepare({ ...base, transA: false, transB: true }, 251);
    quantise(p.a, p.a, parseFormat('e5m2-paper'), { rounding: 'nearest', overflow: 'saturate' });
    quantise(p.b, p.b, parseFormat('e4m3-paper'), { rounding: 'nearest', overflow: 'saturate' });
    expectWithin(runGemm(gpu, p, 'e5m2'), runGemm(cpuBackend, p), allowance(p, 1e-5), p.c, 'e5m2 × e4m3');
  });

  it('native FP8 (cuBLASLt, OCP E4M3 inputs) matches the fp32 product within FP8 accumulation precision', () => {
    const native = tryCreateCudaBackend({ nativeFp8: true });
    if (typeof native === 'string') throw new Error(native);
    const support = native.gemmEngine.fp8Support();
    const e4m3 = parseFormat('e4m3');
    for (const [transA, transB] of TRANSPOSES) {
      for (const batch of [1, 3]) {
        const p = prepare({ m: 64, n: 48, k: 96, batch, pad: 0, offsets: 0, alpha: 1.25, beta: 0.5, transA, transB }, 261, e4m3);
        const before = native.gemmEngine.counts.fp8;
        const out = runGemm(native, p, 'e4m3');
        if (support.supported) expect(native.gemmEngine.counts.fp8, `native FP8 ran (fallbacks: ${[...native.gemmEngine.fallbacks].join('; ')})`).toBe(before + 1);
        expectWithin(out, runGemm(cpuBackend, p), allowance(p, 2 ** -10), p.c, `fp8 ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} batch ${batch}`);
      }
    }
    // k not divisible by 16: recorded fallback to the exact FP16 path.
    const p = prepare({ ...base, transA: false, transB: true }, 271, e4m3);
    expectWithin(runGemm(native, p, 'e4m3'), runGemm(cpuBackend, p), allowance(p, 1e-5), p.c, 'fp8 fallback');
    if (support.supported) expect([...native.gemmEngine.fallbacks].some((r) => r.includes('k divisible by 16'))).toBe(true);
  });

  it('gemms (side stream on): two FP32 products on two streams equal gemm one by one, eagerly and in a captured graph', () => {
    // Big enough (≥ 2^22 multiply-adds each) to be sent to the second stream.
    const p1 = prepare({ ...base, transA: false, transB: true, m: 256, n: 160, k: 64, batch: 2 }, 301);
    const p2 = prepare({ ...base, transA: true, transB: false, m: 200, n: 144, k: 160, beta: 1 }, 302);
    const sided = tryCreateCudaBackend({ sideStream: true });
    if (typeof sided === 'string') throw new Error(sided);
    const run = (mode: 'gemm' | 'gemms' | 'graph') =>
      runOn(sided, { a1: p1.a, b1: p1.b, c1: p1.c, a2: p2.a, b2: p2.b, c2: p2.c }, (s) => {
        const q1 = { ...p1.params, a: s.a1!, b: s.b1!, c: s.c1! };
        const q2 = { ...p2.params, a: s.a2!, b: s.b2!, c: s.c2! };
        if (mode === 'gemm') {
          sided.gemm(q1);
          sided.gemm(q2);
        } else if (mode === 'gemms') sided.gemms([q1, q2]);
        else {
          const graph = sided.captureGraph(() => sided.gemms([q1, q2]));
          graph.replay();
          sided.synchronize();
          graph.dispose();
        }
      }, ['c1', 'c2']);
    const before = sided.sideBySide;
    const sequential = run('gemm');
    for (const mode of ['gemms', 'graph'] as const) {
      const out = run(mode);
      expect(Array.from(out.c1!), `${mode} c1`).toEqual(Array.from(sequential.c1!));
      expect(Array.from(out.c2!), `${mode} c2`).toEqual(Array.from(sequential.c2!));
    }
    expect(sided.sideBySide).toBe(before + 2);
    expectWithin(sequential.c2 as Float32Array, runGemm(cpuBackend, p2), allowance(p2, 1e-5), p2.c, 'second product');
  });

  it('gemms runs several FP32 products of one shape as one batched call, equal to the CPU twin, eagerly and in a captured graph', () => {
    // Four products of one shape (offsets, padding, beta 0.3) and one of another: the four become one
    // cublasSgemmBatched call, the fifth runs alone. 96·80·160 multiply-adds each: above gemm_small.
    const shape = { ...base, m: 96, n: 80, k: 160 };
    const same = [0, 1, 2, 3].map((i) => prepare({ ...shape, transA: true, transB: false }, 401 + i));
    const other = prepare({ ...shape, transA: false, transB: true, k: 144 }, 409);
    const all = [...same, other];
    const buffers: Record<string, Float32Array> = {};
    all.forEach((p, i) => Object.assign(buffers, { [`a${i}`]: p.a, [`b${i}`]: p.b, [`c${i}`]: p.c }));
    const outputs = all.map((_, i) => `c${i}`);
    const run = (graph: boolean) =>
      runOn(gpu, buffers, (s) => {
        const params = all.map((p, i) => ({ ...p.params, a: s[`a${i}`]!, b: s[`b${i}`]!, c: s[`c${i}`]! }));
        if (!graph) gpu.gemms(params);
        else {
          const captured = gpu.captureGraph(() => gpu.gemms(params));
          captured.replay();
          gpu.synchronize();
          captured.dispose();
        }
      }, outputs);
    const before = gpu.gemmEngine.counts.grouped;
    const eager = run(false);
    expect(gpu.gemmEngine.counts.grouped).toBe(before + 1);
    all.forEach((p, i) => expectWithin(eager[`c${i}`] as Float32Array, runGemm(cpuBackend, p), allowance(p, 1e-5), p.c, `product ${i}`));
    const replayed = run(true);
    for (const name of outputs) expect(Array.from(replayed[name]!), name).toEqual(Array.from(eager[name]!));
  });

  it('a grouped call over a long k splits it into chunks summed in order: equal to the CPU twin, with beta', () => {
    // k = 1024: four 256-deep chunks per product (gemm.ts groupChunks), partial products summed into C.
    const shape = { ...base, m: 40, n: 36, k: 1024 };
    const prepared = [0, 1, 2].map((i) => prepare({ ...shape, transA: true, transB: false }, 431 + i));
    const buffers: Record<string, Float32Array> = {};
    prepared.forEach((p, i) => Object.assign(buffers, { [`a${i}`]: p.a, [`b${i}`]: p.b, [`c${i}`]: p.c }));
    const before = gpu.gemmEngine.counts.grouped;
    const out = runOn(gpu, buffers, (s) => gpu.gemms(prepared.map((p, i) => ({ ...p.params, a: s[`a${i}`]!, b: s[`b${i}`]!, c: s[`c${i}`]! }))), prepared.map((_, i) => `c${i}`));
    expect(gpu.gemmEngine.counts.grouped).toBe(before + 1);
    prepared.forEach((p, i) => expectWithin(out[`c${i}`] as Float32Array, runGemm(cpuBackend, p), allowance(p, 1e-5), p.c, `split product ${i}`));
  });

  it('rejects an operand view past the end of its storage', () => {
    const p = prepare({ ...base, transA: false, transB: false }, 281);
    expect(() =>
      runOn(gpu, { a: p.a.subarray(0, 10), b: p.b, c: p.c }, (s) => gpu.gemm({ ...p.params, a: s.a!, b: s.b!, c: s.c! }), []),
    ).toThrow(RangeError);
  });
});
