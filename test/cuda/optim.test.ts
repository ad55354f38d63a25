/**
 * Optimiser kernels against the CPU twin. Both compute in float64 and round once to float32; the
 * only differences come from the device's pow/sqrt against V8's (last float64 ulps), so results
 * agree to within one float32 ulp (rel 2^-22).
 */
import { describe, expect, it } from 'vitest';
import type { AdamWMultiTensor, Backend, Storage } from '../../src/backend/backend.ts';
import { ADAMW_CHUNK, ADAMW_TABLE_WORDS } from '../../src/backend/cuda/kernels/optim.ts';
import { AdamWTables } from '../../src/backend/cuda/optim-ops.ts';
import { CudaStorage, type CudaRuntime } from '../../src/backend/cuda/runtime.ts';
import { cpu, cuda, expectClose, expectSameBits, noCudaReason, positiveValues, runBoth, testValues } from './helpers.ts';

const ONE_ULP = { rel: 2 ** -22, abs: 1e-30 };

describe.skipIf(!cuda)(`CUDA optimiser kernels ${noCudaReason}`, () => {
  const n = 3001;
  const state = () => ({
    param: testValues(n, 141),
    grad: testValues(n, 142, 0.1),
    m: testValues(n, 143, 0.01),
    v: positiveValues(n, 144, 1e-4, 1e-2),
    update: new Float32Array(n),
    step: new Int32Array([7]),
  });

  it('adamw', () => {
    const { cpu, gpu } = runBoth(state(), (b, s) => {
      b.adamw({
        param: s.param!, grad: s.grad!, m: s.m!, v: s.v!, n, step: s.step!, lr: 1e-3, lrDecay: 0.05, lrScale: 0.5,
        beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, gradScale: 2,
      });
    }, ['param', 'm', 'v']);
    for (const name of ['param', 'm', 'v']) expectClose(gpu[name]!, cpu[name]!, ONE_ULP, `adamw ${name}`);
  });

  it('sgdm', () => {
    const { cpu, gpu } = runBoth(state(), (b, s) => {
      b.sgdm({ param: s.param!, grad: s.grad!, momentum: s.m!, n, step: s.step!, lr: 0.1, lrDecay: 0.1, lrScale: 2, mu: 0.9, weightDecay: 1e-4, gradScale: 0.5 });
    }, ['param', 'm']);
    for (const name of ['param', 'm']) expectClose(gpu[name]!, cpu[name]!, ONE_ULP, `sgdm ${name}`);
  });

  for (const useTrustRatio of [true, false]) {
    it(`lamb update then apply (trust ratio ${useTrustRatio ? 'on' : 'off'})`, () => {
      const { cpu, gpu } = runBoth({ ...state(), wNorm: new Float32Array(1), uNorm: new Float32Array(1) }, (b, s) => {
        b.lambUpdate({ param: s.param!, grad: s.grad!, m: s.m!, v: s.v!, update: s.update!, n, step: s.step!, beta1: 0.9, beta2: 0.999, eps: 1e-6, weightDecay: 0.01, gradScale: 1 });
        b.reduce('sumSquares', s.param!, [n], s.wNorm!, [1], 1);
        b.reduce('sumSquares', s.update!, [n], s.uNorm!, [1], 1);
        b.lambApply({ param: s.param!, update: s.update!, paramNormSq: s.wNorm!, updateNormSq: s.uNorm!, n, step: s.step!, lr: 2e-3, warmupSteps: 10, totalSteps: 100, useTrustRatio });
      }, ['param', 'update', 'm', 'v']);
      for (const name of ['m', 'v', 'update']) expectClose(gpu[name]!, cpu[name]!, ONE_ULP, `lamb ${name}`);
      // The trust ratio comes from float32 norms whose float64 sums differ in order: rel 1e-6.
      expectClose(gpu.param!, cpu.param!, { rel: 1e-6 }, 'lamb param');
    });
  }

  describe('adamwMulti', () => {
    const backend = cuda!;
    // Sizes around the chunk length and below a float4, with mixed lrScale and weight decay.
    const sizes = [1, 3, 5, 1000, 4097, ADAMW_CHUNK, ADAMW_CHUNK + 1, 3 * ADAMW_CHUNK + 2];
    const settings = { lr: 1e-3, lrDecay: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, gradScale: 2 };
    const host = sizes.map((size, i) => ({
      n: size,
      lrScale: [1, 0.5, 2, 1 / Math.sqrt(1000), 0.125][i % 5]!,
      weightDecay: [0.01, 0, 0.1][i % 3]!,
      param: testValues(size, 600 + i),
      grad: testValues(size, 700 + i, 0.1),
      m: testValues(size, 800 + i, 0.01),
      v: positiveValues(size, 900 + i, 1e-4, 1e-2),
    }));
    const NAMES = ['param', 'grad', 'm', 'v'] as const;
    /** Storages 4 bytes into an allocation, which the float4 path must not take: all four of
     * tensor 3's, and only the gradient of tensor 4's. */
    const misaligned = (i: number, name: string): boolean => i === 3 || (i === 4 && name === 'grad');

    interface Uploaded {
      readonly tensors: AdamWMultiTensor[];
      readonly step: Storage;
      readonly owned: Storage[];
    }

    function upload(b: Backend, lrScaleOffset = 0): Uploaded {
      const owned: Storage[] = [];
      const put = (data: Float32Array, shift: boolean): Storage => {
        const base = b.alloc(data.length + (shift ? 1 : 0), 'f32');
        owned.push(base);
        // A view over the same device memory, never released itself (its block is base's).
        const s = shift ? new CudaStorage(data.length, 'f32', { address: (base as CudaStorage).address + 4, classBytes: 0 }) : base;
        b.write(s, data);
        return s;
      };
      const tensors = host.map((t, i) => {
        const [param, grad, m, v] = NAMES.map((name) => put(t[name], b === backend && misaligned(i, name)));
        return { param: param!, grad: grad!, m: m!, v: v!, n: t.n, lrScale: t.lrScale + lrScaleOffset, weightDecay: t.weightDecay };
      });
      const step = b.alloc(1, 'i32');
      owned.push(step);
      b.write(step, new Int32Array([7]));
      return { tensors, step, owned };
    }

    const read = (b: Backend, u: Uploaded): Float32Array[][] => u.tensors.map((t) => [t.param, t.m, t.v].map((s) => b.read(s) as Float32Array));
    const free = (b: Backend, u: Uploaded): void => u.owned.forEach((s) => b.release(s));
    /** One optimiser step as AdamW.step queues it: the update, then t += 1 for the next. */
    const multiStep = (b: Backend, u: Uploaded): void => {
      b.adamwMulti({ ...settings, step: u.step, tensors: u.tensors });
      b.increment(u.step);
    };

    it('matches the CPU twin and per-tensor adamw over two steps, reusing its table', () => {
      const onCpu = upload(cpu);
      multiStep(cpu, onCpu);
      multiStep(cpu, onCpu);
      const expected = read(cpu, onCpu);
      free(cpu, onCpu);

      const multi = upload(backend);
      multiStep(backend, multi);
      const allocations = backend.deviceAllocationCount();
      multiStep(backend, multi);
      // The second call found the first call's table: no upload, no device memory.
      expect(backend.deviceAllocationCount()).toBe(allocations);
      const gotMulti = read(backend, multi);
      free(backend, multi);

      const single = upload(backend);
      for (let k = 0; k < 2; k++) {
        for (const t of single.tensors) backend.adamw({ ...settings, ...t, step: single.step });
        backend.increment(single.step);
      }
      const gotSingle = read(backend, single);
      free(backend, single);

      const labels = ['param', 'm', 'v'];
      gotMulti.forEach((arrays, i) =>
        arrays.forEach((a, k) => {
          const label = `adamwMulti tensor ${i} (n=${sizes[i]}) ${labels[k]}`;
          expectClose(a, expected[i]![k]!, ONE_ULP, label);
          expectSameBits(a, gotSingle[i]![k]!, `${label} against adamw`);
        }),
      );
    });

    it('replays in a CUDA graph after one eager step, and refuses to capture without a table', () => {
      const onCpu = upload(cpu);
      for (let k = 0; k < 3; k++) multiStep(cpu, onCpu);
      const expected = read(cpu, onCpu);
      free(cpu, onCpu);

      const u = upload(backend);
      multiStep(backend, u);
      const graph = backend.captureGraph(() => multiStep(backend, u));
      graph.replay();
      graph.replay();
      const got = read(backend, u);
      graph.dispose();
      expect(Array.from(backend.read(u.step))).toEqual([10]);
      got.forEach((arrays, i) => arrays.forEach((a, k) => expectClose(a, expected[i]![k]!, ONE_ULP, `replayed tensor ${i} output ${k}`)));

      // An lrScale never seen eagerly: no table can exist for this set.
      const fresh = { ...settings, step: u.step, tensors: u.tensors.map((t) => ({ ...t, lrScale: t.lrScale + 0.123 })) };
      expect(() => backend.captureGraph(() => backend.adamwMulti(fresh))).toThrow(/adamwMulti: no device table.*eagerly/);
      free(backend, u);
    });

    it('refuses tensors that share a storage, and wrong sizes or dtypes', () => {
      const u = upload(backend, 0.25);
      const [a, b] = u.tensors;
      const p = { ...settings, step: u.step };
      expect(() => backend.adamwMulti({ ...p, tensors: [{ ...a!, m: b!.m }, b!] })).toThrow(/share a storage/);
      expect(() => backend.adamwMulti({ ...p, tensors: [{ ...a!, n: a!.n + 1 }] })).toThrow(/needs/);
      expect(() => backend.adamwMulti({ ...p, tensors: [{ ...a!, grad: u.step }] })).toThrow(/needs|float32/);
      free(backend, u);
    });
  });
});

/** The table cache on a stand-in runtime that records allocations and uploads (no GPU needed). */
describe('adamwMulti device tables (host side)', () => {
  function fakeRuntime() {
    const uploads: { address: number; words: Uint32Array }[] = [];
    let next = 0x10000;
    const live = new Set<number>();
    const rt = {
      allocator: { isCapturing: false },
      stream: 0n,
      allocateScratch: (bytes: number) => {
        const address = next;
        next += Math.ceil(bytes / 512) * 512;
        live.add(address);
        return { address, classBytes: bytes };
      },
      releaseScratch: (block: { address: number }) => void live.delete(block.address),
      api: {
        cuMemcpyHtoDAsync_v2: (address: number, source: Uint32Array, bytes: number) => {
          uploads.push({ address, words: new Uint32Array(source.buffer.slice(0, bytes)) });
          return 0;
        },
      },
    };
    return { rt, uploads, live, runtime: rt as unknown as CudaRuntime };
  }
  const tensor = (base: number, n: number, lrScale = 1, weightDecay = 0) => ({ param: base, grad: base + 0x100000, m: base + 0x200000, v: base + 0x300000, n, lrScale, weightDecay });

  it('lays out each tensor as the kernel reads it, with chunk starts summed', () => {
    const { runtime, uploads } = fakeRuntime();
    const big = 2 ** 33 + 16;
    const tensors = [tensor(big, 5, 0.5, 0.01), { ...tensor(0x4000000, 2 * ADAMW_CHUNK + 1), grad: 0x4000000 + 4 }, tensor(0x8000000, 1)];
    const table = new AdamWTables().lookup(runtime, tensors);
    expect(table.count).toBe(3);
    expect(table.chunks).toBe(1 + 3 + 1);
    const words = uploads[0]!.words;
    expect(words.length).toBe(3 * ADAMW_TABLE_WORDS);
    const f64 = new Float64Array(words.buffer);
    const i32 = new Int32Array(words.buffer);
    expect([words[0], words[1]]).toEqual([16, 2]);
    expect([f64[4], f64[5]]).toEqual([0.5, 0.01]);
    expect(Array.from(i32.subarray(12, 15))).toEqual([5, 1, 0]);
    // The second tensor's gradient is 4 bytes off: no float4 path for it.
    expect(Array.from(i32.subarray(ADAMW_TABLE_WORDS + 12, ADAMW_TABLE_WORDS + 15))).toEqual([2 * ADAMW_CHUNK + 1, 0, 1]);
    expect(i32[2 * ADAMW_TABLE_WORDS + 14]).toBe(4);
  });

  it('reuses a table for the same tensors, stays bounded, and keeps tables a capture used', () => {
    const { rt, runtime, uploads, live } = fakeRuntime();
    const tables = new AdamWTables(2);
    const first = tables.lookup(runtime, [tensor(0x1000, 10)]);
    expect(tables.lookup(runtime, [tensor(0x1000, 10)])).toBe(first);
    expect(uploads.length).toBe(1);
    // Any change of what the table holds is another table.
    expect(tables.lookup(runtime, [tensor(0x1000, 10, 0.5)])).not.toBe(first);
    rt.allocator.isCapturing = true;
    expect(tables.lookup(runtime, [tensor(0x1000, 10)])).toBe(first);
    expect(() => tables.lookup(runtime, [tensor(0x1000, 11)])).toThrow(/no device table/);
    rt.allocator.isCapturing = false;
    for (let k = 0; k < 5; k++) tables.lookup(runtime, [tensor(0x1000 + 16 * k, 10, 2)]);
    // The captured table stays; of the others only the two most recent are kept.
    expect(tables.size).toBe(3);
    expect(live.has(first.block.address)).toBe(true);
    expect(live.size).toBe(3);
    expect(tables.lookup(runtime, [tensor(0x1000, 10)])).toBe(first);
  });

  it('refuses entries that share an address', () => {
    const { runtime } = fakeRuntime();
    expect(() => new AdamWTables().lookup(runtime, [tensor(0x1000, 4), { ...tensor(0x9000, 4), m: 0x1000 }])).toThrow(/share a storage/);
  });
});
