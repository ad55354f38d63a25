/**
 * Entry points of the CUDA backend. Nothing here throws when there is no GPU: callers get a
 * one-line reason instead (`--device cuda` reports it, `--device auto` falls back to the CPU).
 */
import type { CudaBackend } from './backend.ts';
import { createCudaBackend, type CudaBackendOptions } from './create.ts';
import { openDevice, type DeviceInfo } from './device.ts';

export { CudaBackend } from './backend.ts';
export { CudaGraph } from './graph.ts';
export type { CudaBackendOptions } from './create.ts';
export type { DeviceInfo } from './device.ts';

export type CudaAvailability = { readonly available: true; readonly device: DeviceInfo } | { readonly available: false; readonly reason: string };

/** Whether a GPU and driver are usable (does not load NVRTC or cuBLAS). */
export function cudaAvailability(): CudaAvailability {
  try {
    const device = openDevice();
    return typeof device === 'string' ? { available: false, reason: device } : { available: true, device: device.info };
  } catch (err) {
    return { available: false, reason: `the CUDA driver failed: ${(err as Error).message}` };
  }
}

/** A ready backend, or why there is none (one line). */
export function tryCreateCudaBackend(options: CudaBackendOptions = {}): CudaBackend | string {
  try {
    const created = createCudaBackend(options);
    return typeof created === 'string' ? created : created.backend;
  } catch (err) {
    return `the CUDA backend failed to start: ${(err as Error).message.split('\n')[0]}`;
  }
}
