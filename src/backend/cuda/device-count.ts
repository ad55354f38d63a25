import { bindDriver } from './driver-api.ts';
import { isLoaded, loadCudaLibrary } from './load-library.ts';

/**
 * How many GPUs the driver shows this process (after CUDA_VISIBLE_DEVICES), without creating a
 * context: a sweep's parent process uses it to give each worker its own GPU. 0 without a driver.
 */
export function cudaDeviceCount(): number {
  try {
    const library = loadCudaLibrary('cuda', 'cuInit');
    if (!isLoaded(library)) return 0;
    const api = bindDriver(library.handle);
    if (api.cuInit(0) !== 0) return 0;
    const count = new Int32Array(1);
    return api.cuDeviceGetCount(count) === 0 ? count[0]! : 0;
  } catch {
    return 0;
  }
}
