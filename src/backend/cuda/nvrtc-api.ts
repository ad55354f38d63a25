/** koffi bindings to NVRTC, the runtime CUDA C++ compiler. */
import type { Handle } from './driver-api.ts';
import type { LibraryHandle } from './load-library.ts';

type Fn = (...args: never[]) => number;

export interface NvrtcApi {
  nvrtcVersion(major: Int32Array, minor: Int32Array): number;
  nvrtcGetNumSupportedArchs(count: Int32Array): number;
  nvrtcGetSupportedArchs(archs: Int32Array): number;
  nvrtcCreateProgram(program: BigUint64Array, source: string, name: string, headers: number, sources: null, names: null): number;
  nvrtcCompileProgram(program: Handle, count: number, options: string[]): number;
  nvrtcGetCUBINSize(program: Handle, size: BigUint64Array): number;
  nvrtcGetCUBIN(program: Handle, cubin: Buffer): number;
  nvrtcGetPTXSize(program: Handle, size: BigUint64Array): number;
  nvrtcGetPTX(program: Handle, ptx: Buffer): number;
  nvrtcGetProgramLogSize(program: Handle, size: BigUint64Array): number;
  nvrtcGetProgramLog(program: Handle, log: Buffer): number;
  nvrtcDestroyProgram(program: BigUint64Array): number;
  nvrtcGetErrorString(code: number): string;
}

const PROTOTYPES: Record<keyof NvrtcApi, string> = {
  nvrtcVersion: 'int nvrtcVersion(void *major, void *minor)',
  nvrtcGetNumSupportedArchs: 'int nvrtcGetNumSupportedArchs(void *count)',
  nvrtcGetSupportedArchs: 'int nvrtcGetSupportedArchs(void *archs)',
  nvrtcCreateProgram:
    'int nvrtcCreateProgram(void *program, const char *source, const char *name, int headers, const char **sources, const char **names)',
  nvrtcCompileProgram: 'int nvrtcCompileProgram(void *program, int count, const char **options)',
  nvrtcGetCUBINSize: 'int nvrtcGetCUBINSize(void *program, void *size)',
  nvrtcGetCUBIN: 'int nvrtcGetCUBIN(void *program, void *cubin)',
  nvrtcGetPTXSize: 'int nvrtcGetPTXSize(void *program, void *size)',
  nvrtcGetPTX: 'int nvrtcGetPTX(void *program, void *ptx)',
  nvrtcGetProgramLogSize: 'int nvrtcGetProgramLogSize(void *program, void *size)',
  nvrtcGetProgramLog: 'int nvrtcGetProgramLog(void *program, void *log)',
  nvrtcDestroyProgram: 'int nvrtcDestroyProgram(void *program)',
  nvrtcGetErrorString: 'const char *nvrtcGetErrorString(int code)',
};

export function bindNvrtc(lib: LibraryHandle): NvrtcApi {
  const api: Record<string, Fn> = {};
  for (const [name, prototype] of Object.entries(PROTOTYPES)) api[name] = lib.func(prototype) as Fn;
  return api as unknown as NvrtcApi;
}

export function checkNvrtc(api: NvrtcApi, call: string, code: number, log = ''): void {
  if (code === 0) return;
  throw new Error(`${call} failed: ${api.nvrtcGetErrorString(code)} (${code})${log ? `\n${log}` : ''}`);
}

export function nvrtcVersion(api: NvrtcApi): string {
  const major = new Int32Array(1);
  const minor = new Int32Array(1);
  checkNvrtc(api, 'nvrtcVersion', api.nvrtcVersion(major, minor));
  return `${major[0]}.${minor[0]}`;
}

/** The real architectures (e.g. 90 for sm_90) this NVRTC can emit machine code for. */
export function supportedArchs(api: NvrtcApi): number[] {
  const count = new Int32Array(1);
  checkNvrtc(api, 'nvrtcGetNumSupportedArchs', api.nvrtcGetNumSupportedArchs(count));
  const archs = new Int32Array(count[0]!);
  checkNvrtc(api, 'nvrtcGetSupportedArchs', api.nvrtcGetSupportedArchs(archs));
  return [...archs];
}
