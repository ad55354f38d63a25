/**
 * Shared pieces of the CUDA parity tests: the backend (or why there is none, so suites skip),
 * running one kernel call on the CPU twin and the CUDA backend with the same inputs, and
 * element-wise comparison with a stated tolerance.
 */
import { expect } from 'vitest';
import type { Backend, Storage } from '../../src/backend/backend.ts';
import { CpuBackend } from '../../src/backend/cpu/index.ts';
import { tryCreateCudaBackend, type CudaBackend } from '../../src/backend/cuda/index.ts';

const created = tryCreateCudaBackend();
/** The CUDA backend, or null when this machine has none (then the suites are skipped). */
export const cuda: CudaBackend | null = typeof created === 'string' ? null : created;
export const noCudaReason: string = typeof created === 'string' ? created : '';
export const cpu = new CpuBackend();

export type HostArray = Float32Array | Int32Array;

/** Uploads every buffer to `backend`, runs `call`, reads back the named outputs and frees everything. */
export function runOn(
  backend: Backend,
  buffers: Record<string, HostArray>,
  call: (s: Record<string, Storage>) => void,
  outputs: readonly string[],
): Record<string, HostArray> {
  const storages: Record<string, Storage> = {};
  for (const [name, data] of Object.entries(buffers)) {
    const storage = backend.alloc(data.length, data instanceof Int32Array ? 'i32' : 'f32');
    backend.write(storage, data);
    storages[name] = storage;
  }
  call(storages);
  const result: Record<string, HostArray> = {};
  for (const name of outputs) result[name] = backend.read(storages[name]!);
  for (const storage of Object.values(storages)) backend.release(storage);
  return result;
}

/** The same call on the CPU twin and on CUDA. */
export function runBoth(
  buffers: Record<string, HostArray>,
  call: (b: Backend, s: Record<string, Storage>) => void,
  outputs: readonly string[],
): { cpu: Record<string, HostArray>; gpu: Record<string, HostArray> } {
  if (!cuda) throw new Error(noCudaReason);
  return {
    cpu: runOn(cpu, buffers, (s) => call(cpu, s), outputs),
    gpu: runOn(cuda, buffers, (s) => call(cuda!, s), outputs),
  };
}

export interface Tolerance {
  /** Allowed |gpu − cpu| relative to |cpu|. */
  readonly rel: number;
  /** Allowed |gpu − cpu| relative to the largest |cpu| of the array (for values near zero). */
  readonly absOfMax?: number;
  /** Allowed |gpu − cpu| in absolute terms. */
  readonly abs?: number;
}

/** Fails with the worst elements when gpu and cpu differ by more than the tolerance (NaN matches NaN). */
export function expectClose(gpu: HostArray, cpu: HostArray, tolerance: Tolerance, label: string): void {
  expect(gpu.length, `${label}: length`).toBe(cpu.length);
  let largest = 0;
  for (const v of cpu) if (Number.isFinite(v)) largest = Math.max(largest, Math.abs(v));
  const floor = (tolerance.absOfMax ?? 0) * largest + (tolerance.abs ?? 0);
  const failures: string[] = [];
  let count = 0;
  for (let i = 0; i < cpu.length; i++) {
    const c = cpu[i]!, g = gpu[i]!;
    if (Number.isNaN(c) && Number.isNaN(g)) continue;
    if (c === g) continue;
    if (Math.abs(g - c) <= tolerance.rel * Math.abs(c) + floor) continue;
    count++;
    if (failures.length < 5) failures.push(`[${i}] gpu ${g} cpu ${c}`);
  }
  expect(count === 0 ? '' : `${label}: ${count} of ${cpu.length} elements outside the tolerance: ${failures.join('; ')}`).toBe('');
}

/** Bit-for-bit equality of float32 arrays (NaN payloads and −0 included). */
export function expectSameBits(gpu: HostArray, cpu: HostArray, label: string): void {
  const g = new Int32Array(gpu.buffer, gpu.byteOffset, gpu.length);
  const c = new Int32Array(cpu.buffer, cpu.byteOffset, cpu.length);
  let count = 0;
  const failures: string[] = [];
  for (let i = 0; i < c.length; i++) {
    if (g[i] === c[i]) continue;
    count++;
    if (failures.length < 5) failures.push(`[${i}] gpu 0x${(g[i]! >>> 0).toString(16)} cpu 0x${(c[i]! >>> 0).toString(16)}`);
  }
  expect(count === 0 ? '' : `${label}: ${count} of ${c.length} differ: ${failures.join('; ')}`).toBe('');
}

/** Deterministic pseudo-random float32 values, normal-ish (sum of uniforms), scaled. */
export function testValues(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  for (let i = 0; i < n; i++) out[i] = scale * (next() + next() + next() - 1.5) * 2;
  return out;
}

export function positiveValues(n: number, seed: number, low = 0.1, high = 3): Float32Array {
  return testValues(n, seed).map((v) => low + ((Math.abs(v) * 997) % 1) * (high - low));
}
