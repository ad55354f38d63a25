import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tryCreateCudaBackend, type CudaBackend } from '../../src/backend/cuda/index.ts';
import { loadExperiment } from '../../src/config/load.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import * as T from '../../src/tensor/index.ts';
import { deviceIdle } from '../../src/train/device-wait.ts';
import { runExperiment } from '../../src/train/run-experiment.ts';
import { cuda, noCudaReason } from './helpers.ts';

/** A few ops with stochastic rounding: every kernel kind a lane's step uses draws on its settings. */
function computation(seed: number): Float32Array {
  T.setRandomContext(new T.RandomContext(seed));
  return T.tidy(() => {
    const a = T.tensor(Float32Array.from({ length: 64 * 96 }, (_, i) => Math.sin(i * 0.37 + seed)), [64, 96]);
    const b = T.tensor(Float32Array.from({ length: 96 * 48 }, (_, i) => Math.cos(i * 0.11 - seed)), [96, 48]);
    const product = T.softmax(T.matmul(a, b, { scale: 0.1 }));
    const rounded = T.quantise(product, { format: parseFormat('fp16'), rounding: 'stochastic' });
    return rounded.toArray() as Float32Array;
  });
}

function ownBackend(): CudaBackend {
  const made = tryCreateCudaBackend();
  if (typeof made === 'string') throw new Error(made);
  return made;
}

describe.skipIf(cuda === null)(`CUDA backends side by side in one process ${noCudaReason}`, () => {
  it('each backend has its own stream and memory; interleaved tasks get what they get alone', async () => {
    const alone = [1, 2].map((seed) => T.isolated(() => (T.setDefaultBackend(cuda!), computation(seed))));
    const lanes = [ownBackend(), ownBackend()];
    expect(lanes[0]!.runtime.stream).not.toBe(lanes[1]!.runtime.stream);
    const interleaved = await Promise.all(
      lanes.map((backend, i) =>
        T.isolated(async () => {
          T.setDefaultBackend(backend);
          await new Promise((resolve) => setImmediate(resolve));
          // after the other task has run, this task's default backend is still its own
          expect(T.defaultBackend()).toBe(backend);
          const result = computation(i + 1);
          backend.release(T.randomContext().epoch());
          return result;
        }),
      ),
    );
    expect(interleaved[0]).toEqual(alone[0]);
    expect(interleaved[1]).toEqual(alone[1]);
    for (const backend of lanes) {
      expect(backend.memoryStats().allocatedBytes).toBe(0);
      backend.destroy();
      expect(backend.memoryStats().reservedBytes).toBe(0);
    }
  });

  it('a fence reports queued work as unfinished until the device has done it, without blocking', async () => {
    const backend = ownBackend();
    // ~25 GB of memory traffic: milliseconds of GPU work, queued in far less host time
    const n = 1 << 25;
    const x = backend.alloc(n, 'f32');
    backend.fill(x, 0, n, 1);
    for (let i = 0; i < 100; i++) backend.unary('exp', x, x, n, 1e-3, 1);
    const fence = backend.fence();
    expect(fence.done()).toBe(false);
    await deviceIdle(backend);
    expect(fence.done()).toBe(true);
    fence.dispose();
    backend.release(x);
    backend.destroy();
  });

  it('two runs on backends of their own, interleaved in one process, train like runs alone', async () => {
    const run = (seed: number, own: boolean) => {
      const { config } = loadExperiment('charlm-quick', [`seed=${seed}`, 'training.steps=30', 'training.valid_interval=0', 'training.log_interval=10', 'training.eval_batches=2', 'precision.rounding=nearest'], { device: 'cuda' });
      const dir = mkdtempSync(join(tmpdir(), 'repro-cuda-lanes-'));
      return T.isolated(() => runExperiment({ config, resultsFile: join(dir, 'r.csv'), runsDir: join(dir, 'runs'), progress: 'silent', ownBackend: own }));
    };
    const alone = [await run(1, false), await run(2, false)];
    const together = await Promise.all([run(1, true), run(2, true)]);
    for (let i = 0; i < 2; i++) {
      expect(together[i]!.status).toBe('ok');
      // the embedding's scatter-add uses atomics, so runs differ in the last bits (trainer-graph.test.ts)
      expect(Math.abs(together[i]!.bpc.valid - alone[i]!.bpc.valid)).toBeLessThan(5e-3);
    }
    // the two seeds really are different runs
    expect(together[0]!.bpc.valid).not.toBe(together[1]!.bpc.valid);
  });
});
