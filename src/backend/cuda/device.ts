/**
 * Opens the GPU: loads libcuda, initialises the driver, makes device 0's primary context current
 * (the primary context is the one cuBLAS, through the CUDA runtime, also uses) and describes the
 * device. One device per process, opened once.
 */
import {
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
  CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
  bindDriver,
  checkDriver,
  driverErrorName,
  type DriverApi,
  type Handle,
} from './driver-api.ts';
import { isLoaded, loadCudaLibrary, type LoadedLibrary } from './load-library.ts';

export interface DeviceInfo {
  readonly ordinal: number;
  readonly name: string;
  /** e.g. [9, 0] for the H100/H200. */
  readonly computeCapability: readonly [number, number];
  readonly multiprocessors: number;
  readonly totalMemoryBytes: number;
  /** cuDriverGetVersion: 13000 for CUDA 13.0. */
  readonly driverVersion: number;
}

export interface OpenDevice {
  readonly api: DriverApi;
  readonly library: LoadedLibrary;
  readonly context: Handle;
  readonly info: DeviceInfo;
}

let opened: OpenDevice | string | null = null;

/** Opens device 0, or returns why that is impossible (no driver, no GPU, …). Cached. */
export function openDevice(): OpenDevice | string {
  if (opened !== null) return opened;
  opened = tryOpen();
  return opened;
}

function tryOpen(): OpenDevice | string {
  const library = loadCudaLibrary('cuda', 'cuInit');
  if (!isLoaded(library)) return `no CUDA driver: ${library.reason}`;
  let api: DriverApi;
  try {
    api = bindDriver(library.handle);
  } catch (err) {
    return `the CUDA driver at ${library.path} lacks an entry point this backend needs (${(err as Error).message})`;
  }
  const initCode = api.cuInit(0);
  if (initCode !== 0) {
    const { name, text } = driverErrorName(api, initCode);
    return `the CUDA driver (${library.path}) found no usable GPU: cuInit returned ${name}${text ? ` (${text})` : ''}`;
  }
  const count = new Int32Array(1);
  checkDriver(api, 'cuDeviceGetCount', api.cuDeviceGetCount(count));
  if (count[0] === 0) return `the CUDA driver (${library.path}) reports no GPU`;
  const deviceOut = new Int32Array(1);
  checkDriver(api, 'cuDeviceGet', api.cuDeviceGet(deviceOut, 0));
  const device = deviceOut[0]!;
  const contextOut = new BigUint64Array(1);
  checkDriver(api, 'cuDevicePrimaryCtxRetain', api.cuDevicePrimaryCtxRetain(contextOut, device));
  const context = contextOut[0]!;
  checkDriver(api, 'cuCtxSetCurrent', api.cuCtxSetCurrent(context));
  return { api, library, context, info: describe(api, device) };
}

function describe(api: DriverApi, device: number): DeviceInfo {
  const nameBuffer = Buffer.alloc(256);
  checkDriver(api, 'cuDeviceGetName', api.cuDeviceGetName(nameBuffer, nameBuffer.length, device));
  const end = nameBuffer.indexOf(0);
  const attribute = (id: number): number => {
    const value = new Int32Array(1);
    checkDriver(api, 'cuDeviceGetAttribute', api.cuDeviceGetAttribute(value, id, device));
    return value[0]!;
  };
  const memory = new BigUint64Array(1);
  checkDriver(api, 'cuDeviceTotalMem', api.cuDeviceTotalMem_v2(memory, device));
  const version = new Int32Array(1);
  checkDriver(api, 'cuDriverGetVersion', api.cuDriverGetVersion(version));
  return {
    ordinal: device,
    name: nameBuffer.toString('utf8', 0, end < 0 ? nameBuffer.length : end),
    computeCapability: [attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR), attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)],
    multiprocessors: attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
    totalMemoryBytes: Number(memory[0]),
    driverVersion: version[0]!,
  };
}

/** 13000 → "13.0". */
export function formatCudaVersion(version: number): string {
  return `${Math.floor(version / 1000)}.${Math.floor((version % 1000) / 10)}`;
}
