/**
 * The caching allocator on the device (a repeated step stops allocating) and CUDA-graph capture:
 * a captured sequence of kernels replays to the same results as running it eagerly, and random
 * kernels inside it draw fresh numbers on each replay through the device-side epoch.
 */
import { describe, expect, it } from 'vitest';
import type { Storage } from '../../src/backend/backend.ts';
import { CaptureAllocationError } from '../../src/backend/cuda/allocator.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import { cuda, expectClose, expectSameBits, noCudaReason, testValues } from './helpers.ts';

describe.skipIf(!cuda)(`CUDA allocator and graphs ${noCudaReason}`, () => {
  const backend = cuda!;

  /** A training-step-shaped batch of allocations: temporaries released at the end. */
  function step(): void {
    const temps = [1000, 4096, 4096, 70000, 3, 1 << 20].map((n) => backend.alloc(n, 'f32'));
    backend.fill(temps[3]!, 0, 70000, 1);
    for (const t of temps) backend.release(t);
  }

  it('reuses cached blocks: no device allocation after a warm-up step', () => {
    step();
    const allocations = backend.deviceAllocationCount();
    const reserved = backend.memoryStats().reservedBytes;
    for (let i = 0; i < 5; i++) step();
    expect(backend.deviceAllocationCount()).toBe(allocations);
    expect(backend.memoryStats().reservedBytes).toBe(reserved);
    const before = backend.memoryStats().allocatedBytes;
    const s = backend.alloc(1234, 'f32');
    expect(backend.memoryStats().allocatedBytes).toBe(before + 1234 * 4);
    backend.release(s);
  });

  it('refuses to allocate new device memory during capture, and stays usable', () => {
    expect(() => backend.captureGraph(() => void backend.alloc(123457 * 3, 'f32'))).toThrow(CaptureAllocationError);
    const s = backend.alloc(10, 'f32');
    backend.fill(s, 0, 10, 2);
    expect(Array.from(backend.read(s))).toEqual(new Array(10).fill(2));
    backend.release(s);
  });

  it('graph replay equals eager execution, with fresh random numbers per replay', () => {
    const n = 64 * 48;
    const x = testValues(n, 301);
    const w = testValues(48 * 32, 302);
    const format = parseFormat('e4m3-paper');
    const persistent = {
      x: backend.alloc(n, 'f32'),
      w: backend.alloc(48 * 32, 'f32'),
      y: backend.alloc(64 * 32, 'f32'),
      q: backend.alloc(n, 'f32'),
      u: backend.alloc(n, 'f32'),
      total: backend.alloc(32, 'f32'),
      epoch: backend.alloc(1, 'i32'),
    };
    backend.write(persistent.x, x);
    backend.write(persistent.w, w);
    /** One "step": epoch += 1, then a chain of kernels through temporaries. */
    const run = (p: typeof persistent): void => {
      backend.increment(p.epoch);
      const e: Storage = backend.alloc(n, 'f32');
      backend.unary('exp', p.x, e, n, 0.5, 1);
      backend.gemm({
        transA: false, transB: false, m: 64, n: 32, k: 48, alpha: 0.25, a: e, aOffset: 0, lda: 48, b: p.w, bOffset: 0, ldb: 32,
        beta: 0, c: p.y, cOffset: 0, ldc: 32, batch: 1, strideA: 0, strideB: 0, strideC: 0,
      });
      backend.quantise(e, p.q, n, format, { rounding: 'stochastic', overflow: 'saturate', viaFp16: false, seed: 5, stream: 9 }, p.epoch);
      backend.random(p.u, n, 'uniform', 5, 10, p.epoch, 0, 1);
      backend.reduce('sum', p.y, [64, 32], p.total, [1, 32], 1);
      backend.release(e);
    };
    const snapshot = () => ({ y: backend.read(persistent.y), q: backend.read(persistent.q), u: backend.read(persistent.u), total: backend.read(persistent.total) });

    backend.write(persistent.epoch, new Int32Array([0]));
    run(persistent);
    const eager1 = snapshot();
    run(persistent);
    const eager2 = snapshot();

    backend.write(persistent.epoch, new Int32Array([0]));
    const graph = backend.captureGraph(() => run(persistent));
    graph.replay();
    const replay1 = snapshot();
    graph.replay();
    const replay2 = snapshot();
    graph.dispose();

    for (const [label, eager, replayed] of [['first', eager1, replay1], ['second', eager2, replay2]] as const) {
      expectSameBits(replayed.q, eager.q, `${label} replay quantise`);
      expectSameBits(replayed.u, eager.u, `${label} replay uniform`);
      // Same cuBLAS call either way; allow for a different kernel choice under capture.
      expectClose(replayed.y, eager.y, { rel: 1e-6, absOfMax: 1e-6 }, `${label} replay gemm`);
      expectClose(replayed.total, eager.total, { rel: 1e-6, absOfMax: 1e-6 }, `${label} replay sum`);
    }
    let differ = 0;
    for (let i = 0; i < n; i++) if (replay1.u[i] !== replay2.u[i]) differ++;
    expect(differ).toBeGreaterThan(n * 0.99);
    expect(Array.from(backend.read(persistent.epoch))).toEqual([2]);
    for (const s of Object.values(persistent)) backend.release(s);
  });
});
