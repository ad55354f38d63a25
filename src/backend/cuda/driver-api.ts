/**
 * koffi bindings to the CUDA driver API (libcuda). Versioned entry points (`_v2`) are bound by
 * their exported names, since cuda.h's macros that pick them do not exist for dlsym.
 * Handles (contexts, streams, modules, functions, graphs) are BigInt pointers; device addresses
 * (CUdeviceptr) are plain numbers (they stay far below 2^53).
 */
import type { LibraryHandle } from './load-library.ts';

/** A native handle as koffi 3 passes it: a BigInt address. */
export type Handle = bigint;

export const CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
export const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
export const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
/** cuFuncSetAttribute: dynamic shared memory a launch may ask for (above the default 48 KB). */
export const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
export const CU_STREAM_NON_BLOCKING = 1;
export const CU_STREAM_CAPTURE_MODE_GLOBAL = 0;
/** cuEventCreate flag: an event used only for ordering (cheaper than a timed one). */
export const CU_EVENT_DISABLE_TIMING = 2;
export const CU_STREAM_CAPTURE_STATUS_ACTIVE = 1;

type Fn = (...args: never[]) => number;

export interface DriverApi {
  cuInit(flags: number): number;
  cuDriverGetVersion(version: Int32Array): number;
  cuDeviceGetCount(count: Int32Array): number;
  cuDeviceGet(device: Int32Array, ordinal: number): number;
  cuDeviceGetName(name: Buffer, length: number, device: number): number;
  cuDeviceGetAttribute(value: Int32Array, attribute: number, device: number): number;
  cuDeviceTotalMem_v2(bytes: BigUint64Array, device: number): number;
  cuDevicePrimaryCtxRetain(context: BigUint64Array, device: number): number;
  cuDevicePrimaryCtxRelease_v2(device: number): number;
  cuCtxSetCurrent(context: Handle): number;
  cuStreamCreate(stream: BigUint64Array, flags: number): number;
  cuStreamDestroy_v2(stream: Handle): number;
  cuStreamSynchronize(stream: Handle): number;
  cuMemAlloc_v2(pointer: BigUint64Array, bytes: number): number;
  cuMemFree_v2(pointer: number): number;
  cuMemGetInfo_v2(free: BigUint64Array, total: BigUint64Array): number;
  cuMemcpyHtoDAsync_v2(destination: number, source: ArrayBufferView, bytes: number, stream: Handle): number;
  cuMemcpyDtoHAsync_v2(destination: ArrayBufferView, source: number, bytes: number, stream: Handle): number;
  cuMemcpyDtoDAsync_v2(destination: number, source: number, bytes: number, stream: Handle): number;
  cuMemsetD32Async(destination: number, value: number, count: number, stream: Handle): number;
  cuMemsetD16Async(destination: number, value: number, count: number, stream: Handle): number;
  cuModuleLoadData(module: BigUint64Array, image: Buffer): number;
  cuModuleGetFunction(fn: BigUint64Array, module: Handle, name: string): number;
  cuFuncSetAttribute(fn: Handle, attribute: number, value: number): number;
  cuModuleUnload(module: Handle): number;
  cuLaunchKernel(
    fn: Handle,
    gridX: number,
    gridY: number,
    gridZ: number,
    blockX: number,
    blockY: number,
    blockZ: number,
    sharedBytes: number,
    stream: Handle,
    params: Handle,
    extra: null,
  ): number;
  cuStreamBeginCapture_v2(stream: Handle, mode: number): number;
  cuStreamEndCapture(stream: Handle, graph: BigUint64Array): number;
  cuStreamIsCapturing(stream: Handle, status: Int32Array): number;
  cuGraphInstantiateWithFlags(exec: BigUint64Array, graph: Handle, flags: number): number;
  cuGraphLaunch(exec: Handle, stream: Handle): number;
  cuGraphExecDestroy(exec: Handle): number;
  cuGraphDestroy(graph: Handle): number;
  cuEventCreate(event: BigUint64Array, flags: number): number;
  cuEventRecord(event: Handle, stream: Handle): number;
  cuStreamWaitEvent(stream: Handle, event: Handle, flags: number): number;
  cuEventQuery(event: Handle): number;
  cuEventDestroy_v2(event: Handle): number;
  cuGetErrorName(code: number, name: (string | null)[]): number;
  cuGetErrorString(code: number, text: (string | null)[]): number;
}

const PROTOTYPES: Record<keyof DriverApi, string> = {
  cuInit: 'int cuInit(unsigned int flags)',
  cuDriverGetVersion: 'int cuDriverGetVersion(void *version)',
  cuDeviceGetCount: 'int cuDeviceGetCount(void *count)',
  cuDeviceGet: 'int cuDeviceGet(void *device, int ordinal)',
  cuDeviceGetName: 'int cuDeviceGetName(void *name, int len, int device)',
  cuDeviceGetAttribute: 'int cuDeviceGetAttribute(void *value, int attribute, int device)',
  cuDeviceTotalMem_v2: 'int cuDeviceTotalMem_v2(void *bytes, int device)',
  cuDevicePrimaryCtxRetain: 'int cuDevicePrimaryCtxRetain(void *context, int device)',
  cuDevicePrimaryCtxRelease_v2: 'int cuDevicePrimaryCtxRelease_v2(int device)',
  cuCtxSetCurrent: 'int cuCtxSetCurrent(void *context)',
  cuStreamCreate: 'int cuStreamCreate(void *stream, unsigned int flags)',
  cuStreamDestroy_v2: 'int cuStreamDestroy_v2(void *stream)',
  cuStreamSynchronize: 'int cuStreamSynchronize(void *stream)',
  cuMemAlloc_v2: 'int cuMemAlloc_v2(void *pointer, size_t bytes)',
  cuMemFree_v2: 'int cuMemFree_v2(uint64_t pointer)',
  cuMemGetInfo_v2: 'int cuMemGetInfo_v2(void *free, void *total)',
  cuMemcpyHtoDAsync_v2: 'int cuMemcpyHtoDAsync_v2(uint64_t destination, void *source, size_t bytes, void *stream)',
  cuMemcpyDtoHAsync_v2: 'int cuMemcpyDtoHAsync_v2(void *destination, uint64_t source, size_t bytes, void *stream)',
  cuMemcpyDtoDAsync_v2: 'int cuMemcpyDtoDAsync_v2(uint64_t destination, uint64_t source, size_t bytes, void *stream)',
  cuMemsetD32Async: 'int cuMemsetD32Async(uint64_t destination, unsigned int value, size_t count, void *stream)',
  cuMemsetD16Async: 'int cuMemsetD16Async(uint64_t destination, unsigned short value, size_t count, void *stream)',
  cuModuleLoadData: 'int cuModuleLoadData(void *module, void *image)',
  cuModuleGetFunction: 'int cuModuleGetFunction(void *fn, void *module, const char *name)',
  cuFuncSetAttribute: 'int cuFuncSetAttribute(void *fn, int attribute, int value)',
  cuModuleUnload: 'int cuModuleUnload(void *module)',
  cuLaunchKernel:
    'int cuLaunchKernel(void *fn, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, unsigned int shared, void *stream, void *params, void *extra)',
  cuStreamBeginCapture_v2: 'int cuStreamBeginCapture_v2(void *stream, int mode)',
  cuStreamEndCapture: 'int cuStreamEndCapture(void *stream, void *graph)',
  cuStreamIsCapturing: 'int cuStreamIsCapturing(void *stream, void *status)',
  cuGraphInstantiateWithFlags: 'int cuGraphInstantiateWithFlags(void *exec, void *graph, unsigned long long flags)',
  cuGraphLaunch: 'int cuGraphLaunch(void *exec, void *stream)',
  cuGraphExecDestroy: 'int cuGraphExecDestroy(void *exec)',
  cuGraphDestroy: 'int cuGraphDestroy(void *graph)',
  cuEventCreate: 'int cuEventCreate(void *event, unsigned int flags)',
  cuEventRecord: 'int cuEventRecord(void *event, void *stream)',
  cuStreamWaitEvent: 'int cuStreamWaitEvent(void *stream, void *event, unsigned int flags)',
  cuEventQuery: 'int cuEventQuery(void *event)',
  cuEventDestroy_v2: 'int cuEventDestroy_v2(void *event)',
  cuGetErrorName: 'int cuGetErrorName(int code, _Out_ const char **name)',
  cuGetErrorString: 'int cuGetErrorString(int code, _Out_ const char **text)',
};

export function bindDriver(lib: LibraryHandle): DriverApi {
  const api: Record<string, Fn> = {};
  for (const [name, prototype] of Object.entries(PROTOTYPES)) api[name] = lib.func(prototype) as Fn;
  return api as unknown as DriverApi;
}

/** Error raised by a failing CUDA call; carries the driver's error name. */
export class CudaError extends Error {
  constructor(
    readonly call: string,
    readonly code: number,
    readonly codeName: string,
    detail: string,
  ) {
    super(`${call} failed: ${codeName} (${code})${detail ? `: ${detail}` : ''}`);
    this.name = 'CudaError';
  }
}

export function driverErrorName(api: DriverApi, code: number): { name: string; text: string } {
  const name: (string | null)[] = [null];
  const text: (string | null)[] = [null];
  api.cuGetErrorName(code, name);
  api.cuGetErrorString(code, text);
  return { name: name[0] ?? `CUDA error ${code}`, text: text[0] ?? '' };
}

/** Throws CudaError when a driver call returned an error code. */
export function checkDriver(api: DriverApi, call: string, code: number): void {
  if (code === 0) return;
  const { name, text } = driverErrorName(api, code);
  throw new CudaError(call, code, name, text);
}
