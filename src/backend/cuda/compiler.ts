/**
 * Compiles CUDA C with NVRTC for the device's architecture and keeps the machine code on disk,
 * keyed by a hash of the source, the options, the target and the compiler version, so a kernel
 * is compiled once per machine rather than once per process.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isLoaded, loadCudaLibrary, type LoadedLibrary } from './load-library.ts';
import { bindNvrtc, checkNvrtc, nvrtcVersion, supportedArchs, type NvrtcApi } from './nvrtc-api.ts';

export const KERNEL_CACHE_ENV = 'REPRO_KERNEL_CACHE';

export function kernelCacheDir(): string {
  return process.env[KERNEL_CACHE_ENV] ?? join(homedir(), '.cache', 'unit-scaling-repro', 'kernels');
}

export interface CompiledImage {
  /** A cubin, or PTX (NUL-terminated) that the driver compiles when this NVRTC is older than the GPU. */
  readonly image: Buffer;
  readonly fromCache: boolean;
}

export interface CompilerTarget {
  /** `--gpu-architecture=…` as passed to NVRTC. */
  readonly option: string;
  readonly kind: 'cubin' | 'ptx';
}

export class KernelCompiler {
  readonly version: string;
  readonly target: CompilerTarget;
  /** Compiles done and cache hits, for the doctor and tests. */
  compiled = 0;
  cacheHits = 0;
  private cacheUsable = true;

  private constructor(
    private readonly api: NvrtcApi,
    readonly library: LoadedLibrary,
    computeCapability: readonly [number, number],
    readonly cacheDir: string,
  ) {
    this.version = nvrtcVersion(api);
    this.target = chooseTarget(supportedArchs(api), computeCapability[0] * 10 + computeCapability[1], this.version);
  }

  /** The NVRTC-backed compiler for a device, or why there is none. */
  static create(computeCapability: readonly [number, number]): KernelCompiler | string {
    const library = loadCudaLibrary('nvrtc', 'nvrtcVersion');
    if (!isLoaded(library)) return library.reason;
    try {
      return new KernelCompiler(bindNvrtc(library.handle), library, computeCapability, kernelCacheDir());
    } catch (err) {
      return `NVRTC at ${library.path} is unusable: ${(err as Error).message}`;
    }
  }

  compile(name: string, source: string, options: readonly string[]): CompiledImage {
    const allOptions = [this.target.option, '--std=c++17', ...options];
    const key = createHash('sha256')
      .update(`${source}\0${allOptions.join(' ')}\0nvrtc ${this.version}\0${this.target.kind}`)
      .digest('hex');
    const path = join(this.cacheDir, `${name}-${key.slice(0, 32)}.${this.target.kind}`);
    if (this.cacheUsable) {
      try {
        const image = readFileSync(path);
        this.cacheHits++;
        return { image, fromCache: true };
      } catch {
        // not cached yet
      }
    }
    const image = this.nvrtcCompile(name, source, allOptions);
    this.compiled++;
    this.store(path, image);
    return { image, fromCache: false };
  }

  private nvrtcCompile(name: string, source: string, options: string[]): Buffer {
    const api = this.api;
    const programOut = new BigUint64Array(1);
    checkNvrtc(api, 'nvrtcCreateProgram', api.nvrtcCreateProgram(programOut, source, `${name}.cu`, 0, null, null));
    const program = programOut[0]!;
    try {
      const code = api.nvrtcCompileProgram(program, options.length, options);
      if (code !== 0) checkNvrtc(api, `nvrtcCompileProgram(${name})`, code, this.log(program));
      const size = new BigUint64Array(1);
      if (this.target.kind === 'cubin') {
        checkNvrtc(api, 'nvrtcGetCUBINSize', api.nvrtcGetCUBINSize(program, size));
        const image = Buffer.alloc(Number(size[0]));
        checkNvrtc(api, 'nvrtcGetCUBIN', api.nvrtcGetCUBIN(program, image));
        return image;
      }
      checkNvrtc(api, 'nvrtcGetPTXSize', api.nvrtcGetPTXSize(program, size));
      const image = Buffer.alloc(Number(size[0]));
      checkNvrtc(api, 'nvrtcGetPTX', api.nvrtcGetPTX(program, image));
      return image;
    } finally {
      api.nvrtcDestroyProgram(programOut);
    }
  }

  private log(program: bigint): string {
    const size = new BigUint64Array(1);
    if (this.api.nvrtcGetProgramLogSize(program, size) !== 0) return '';
    const log = Buffer.alloc(Number(size[0]));
    if (this.api.nvrtcGetProgramLog(program, log) !== 0) return '';
    return log.toString('utf8').replace(/\0+$/, '');
  }

  /** Atomic write (temporary file + rename); a cache that cannot be written is skipped, not fatal. */
  private store(path: string, image: Buffer): void {
    if (!this.cacheUsable) return;
    try {
      mkdirSync(this.cacheDir, { recursive: true });
      const temporary = `${path}.${process.pid}.tmp`;
      writeFileSync(temporary, image);
      renameSync(temporary, path);
    } catch {
      this.cacheUsable = false;
    }
  }
}

/**
 * Machine code for the device's own architecture when NVRTC knows it; otherwise PTX for the newest
 * architecture NVRTC knows that the device can run (the driver compiles PTX forward).
 */
export function chooseTarget(archs: readonly number[], deviceArch: number, version: string): CompilerTarget {
  if (archs.includes(deviceArch)) return { option: `--gpu-architecture=sm_${deviceArch}`, kind: 'cubin' };
  const older = archs.filter((a) => a <= deviceArch);
  if (older.length === 0) {
    throw new Error(`NVRTC ${version} cannot compile for compute capability ${Math.floor(deviceArch / 10)}.${deviceArch % 10} (it supports sm_${archs.join(', sm_')})`);
  }
  return { option: `--gpu-architecture=compute_${Math.max(...older)}`, kind: 'ptx' };
}
