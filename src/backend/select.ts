import type { Backend } from './backend.ts';
import { cpuBackend } from '../tensor/device.ts';
import { ReproError } from '../errors.ts';

export type DeviceChoice = 'cpu' | 'cuda' | 'auto';

interface CudaModule {
  tryCreateCudaBackend(): (Backend & { destroy(): void }) | string;
}

let cuda: Backend | string | null = null;

async function newCudaBackend(): Promise<(Backend & { destroy(): void }) | string> {
  try {
    const mod = (await import('./cuda/index.ts')) as CudaModule;
    return mod.tryCreateCudaBackend();
  } catch (err) {
    return `the CUDA backend could not be loaded (${(err as Error).message.split('\n')[0]})`;
  }
}

async function cudaBackendOrReason(): Promise<Backend | string> {
  return (cuda ??= await newCudaBackend());
}

/**
 * The backend for `--device`: cpu; cuda (one clear error line when no GPU or driver is usable);
 * auto (CUDA when usable, else the CPU).
 */
export async function createBackend(device: DeviceChoice): Promise<Backend> {
  if (device === 'cpu') return cpuBackend();
  const found = await cudaBackendOrReason();
  if (typeof found !== 'string') return found;
  if (device === 'auto') return cpuBackend();
  throw new ReproError(`--device cuda: ${found}`);
}

/** A backend for one run, and how to give it back when the run is over. */
export interface OwnBackend {
  readonly backend: Backend;
  readonly release: () => void;
}

/**
 * Like createBackend, but on CUDA a backend of the caller's own: its own stream, allocator and
 * cuBLAS handles (kernels and the device are shared), so several runs in one process each queue
 * work on their own stream and the GPU runs them side by side. `release` frees its memory.
 * The CPU backend is shared (it has no queue to separate).
 */
export async function createOwnBackend(device: DeviceChoice): Promise<OwnBackend> {
  const shared = { backend: cpuBackend(), release: () => {} };
  if (device === 'cpu') return shared;
  // Not through the process's cached backend: that would hold a stream and a cuBLAS workspace
  // nobody in a sweep of own backends uses.
  const own = await newCudaBackend();
  if (typeof own !== 'string') return { backend: own, release: () => own.destroy() };
  if (device === 'auto') return shared;
  throw new ReproError(`--device cuda: ${own}`);
}
