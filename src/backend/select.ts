import type { Backend } from './backend.ts';
import { cpuBackend } from '../tensor/device.ts';
import { ReproError } from '../errors.ts';

export type DeviceChoice = 'cpu' | 'cuda' | 'auto';

interface CudaModule {
  tryCreateCudaBackend(): Backend | string;
}

let cuda: Backend | string | null = null;

async function cudaBackendOrReason(): Promise<Backend | string> {
  if (cuda !== null) return cuda;
  try {
    const mod = (await import('./cuda/index.ts')) as CudaModule;
    cuda = mod.tryCreateCudaBackend();
  } catch (err) {
    cuda = `the CUDA backend could not be loaded (${(err as Error).message.split('\n')[0]})`;
  }
  return cuda;
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
