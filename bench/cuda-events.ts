// CUDA events around work queued on the backend's stream: GPU time without host synchronisation.
import type { CudaBackend } from '../src/backend/cuda/backend.ts';

export interface Timer {
  around(fn: () => unknown): unknown;
  /** Milliseconds of every bracketed call since the last collect, in order. */
  collect(): number[];
}

/** CUDA events bound from the driver library the backend already loaded. */
export function eventTimer(cuda: CudaBackend): Timer {
  const lib = cuda.runtime.device.library.handle;
  const create = lib.func('int cuEventCreate(void *event, unsigned int flags)');
  const record = lib.func('int cuEventRecord(void *event, void *stream)');
  const sync = lib.func('int cuEventSynchronize(void *event)');
  let elapsed: (ms: Float32Array, a: bigint, b: bigint) => number;
  try {
    elapsed = lib.func('int cuEventElapsedTime_v2(void *ms, void *start, void *end)');
  } catch {
    elapsed = lib.func('int cuEventElapsedTime(void *ms, void *start, void *end)');
  }
  const pool: bigint[] = [];
  let used = 0;
  const next = (): bigint => {
    if (used === pool.length) {
      const out = new BigUint64Array(1);
      if (create(out, 0) !== 0) throw new Error('cuEventCreate failed');
      pool.push(out[0]!);
    }
    return pool[used++]!;
  };
  const pairs: [bigint, bigint][] = [];
  const stream = cuda.runtime.stream;
  return {
    around(fn) {
      const a = next();
      record(a, stream);
      const r = fn();
      const b = next();
      record(b, stream);
      pairs.push([a, b]);
      return r;
    },
    collect() {
      if (pairs.length > 0) sync(pairs[pairs.length - 1]![1]);
      const ms = new Float32Array(1);
      const out = pairs.map(([a, b]) => {
        if (elapsed(ms, a, b) !== 0) throw new Error('cuEventElapsedTime failed');
        return ms[0]!;
      });
      pairs.length = 0;
      used = 0;
      return out;
    },
  };
}
