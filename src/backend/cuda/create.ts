/** Assembles a CudaBackend: device, NVRTC, kernels, stream, allocator, cuBLAS and cuBLASLt. */
import { CudaBackend, type SideStream } from './backend.ts';
import { KernelCompiler } from './compiler.ts';
import { bindCublas, bindCublasLt, checkCublas, CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH, type CublasApi, type CublasLtApi } from './cublas-api.ts';
import { openDevice, type OpenDevice } from './device.ts';
import { checkDriver, CU_EVENT_DISABLE_TIMING, CU_STREAM_NON_BLOCKING, type Handle } from './driver-api.ts';
import { CudaGemm, PACK16_KINDS, type GemmHost, type GemmOptions } from './gemm.ts';
import { CONVERT16_MODULE, CONVERT8_MODULE } from './kernels/convert.ts';
import { ELEMENTWISE_MODULE } from './kernels/elementwise.ts';
import { GEMM_SMALL_MODULE, POINTER_WORDS } from './kernels/gemm-small.ts';
import type { ParamKind } from './launch.ts';
import { isLoaded, loadCudaLibrary, type LoadedLibrary } from './load-library.ts';
import { KernelRegistry, type KernelModuleSource } from './modules.ts';
import { asCuda, CudaRuntime } from './runtime.ts';

export interface CudaBackendOptions {
  /** Let FP32 GEMMs use TF32 tensor cores (10-bit mantissa inputs). Default: env REPRO_ALLOW_TF32=1, else off. */
  readonly allowTf32?: boolean;
  /** Run 'e4m3' GEMMs on cuBLASLt FP8 (exact only for OCP E4M3 values). Default: env REPRO_NATIVE_FP8=1, else off. */
  readonly nativeFp8?: boolean;
  /** Products of at most 2^20 multiply-adds on our own kernel instead of cuBLAS. Default: on unless env REPRO_CUDA_SMALL_GEMM=0. */
  readonly smallGemms?: boolean;
  /**
   * Run a matmul's two gradient GEMMs on two streams. Default: off unless env REPRO_CUDA_SIDE_STREAM=1
   * (on the H200 it took the FP32 paper-size reference step from 2.28 to 2.20 ms, but slowed the
   * FP16/BF16/FP8 steps by 5-10%).
   */
  readonly sideStream?: boolean;
}

/** cuBLAS's recommended workspace on Hopper; shared by cuBLAS and cuBLASLt (same stream). */
const WORKSPACE_BYTES = 32 * 1024 * 1024;

export interface CudaLibraries {
  readonly driver: LoadedLibrary;
  readonly nvrtc: LoadedLibrary;
  readonly cublas: LoadedLibrary;
  /** Null when cuBLASLt could not be loaded (then no native FP8 GEMM). */
  readonly cublasLt: LoadedLibrary | null;
}

export interface CreatedBackend {
  readonly backend: CudaBackend;
  readonly libraries: CudaLibraries;
  readonly cublasVersion: number;
  readonly cublasLtVersion: number | null;
}

const GEMM_KERNELS: Record<string, { module: KernelModuleSource; kinds: readonly ParamKind[] }> = {
  scale_matrices: { module: ELEMENTWISE_MODULE, kinds: ['p', 'i', 'i', 'i', 'l', 'i', 'f'] },
  pack_f16: { module: CONVERT16_MODULE, kinds: PACK16_KINDS },
  pack_bf16: { module: CONVERT16_MODULE, kinds: PACK16_KINDS },
  pack_e4m3: { module: CONVERT8_MODULE, kinds: ['p', 'p', 'i', 'i', 'l', 'l', 'l', 'i'] },
  gemm_small: { module: GEMM_SMALL_MODULE, kinds: ['p', 'p', 'p', 'i', 'i', 'i', 'i', 'i', 'i', 'l', 'l', 'l', 'i', 'i', 'i', 'f', 'f'] },
  write_words: { module: GEMM_SMALL_MODULE, kinds: [`s${POINTER_WORDS}`, 'i', 'p'] },
  sum_chunks_table: { module: GEMM_SMALL_MODULE, kinds: ['p', 'p', 'i', 'i', 'i', 'i', 'i', 'f'] },
  sum_chunks: { module: GEMM_SMALL_MODULE, kinds: ['p', 'p', 'i', 'i', 'i', 'l', 'i', 'i', 'f'] },
};

function envFlag(name: string): boolean {
  const value = process.env[name];
  return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
}

/** What every backend of this process shares: the device, its kernels and the loaded libraries. */
interface CudaShared {
  readonly device: OpenDevice;
  readonly registry: KernelRegistry;
  readonly libraries: CudaLibraries;
  readonly cublas: CublasApi;
  readonly lt: CublasLtApi | null;
}

let shared: CudaShared | string | null = null;

function openShared(): CudaShared | string {
  if (shared !== null) return shared;
  const device = openDevice();
  if (typeof device === 'string') return device;
  const compiler = KernelCompiler.create(device.info.computeCapability);
  if (typeof compiler === 'string') return `no usable NVRTC (needed to compile the kernels): ${compiler}`;
  // cuBLASLt first: libcublas then binds to this copy rather than finding its own.
  const ltLibrary = loadCudaLibrary('cublasLt', 'cublasLtCreate');
  const cublasLibrary = loadCudaLibrary('cublas', 'cublasCreate_v2');
  if (!isLoaded(cublasLibrary)) return `no usable cuBLAS: ${cublasLibrary.reason}`;
  shared = {
    device,
    registry: new KernelRegistry(device.api, compiler),
    libraries: { driver: device.library, nvrtc: compiler.library, cublas: cublasLibrary, cublasLt: isLoaded(ltLibrary) ? ltLibrary : null },
    cublas: bindCublas(cublasLibrary.handle),
    lt: isLoaded(ltLibrary) ? bindCublasLt(ltLibrary.handle) : null,
  };
  return shared;
}

/**
 * Builds a backend, or returns one line saying why CUDA cannot be used here. Every call gives a
 * backend with its own stream, allocator and cuBLAS handles; the device, compiled kernels and
 * libraries are shared. Backends made by separate calls run side by side on the GPU (a sweep's
 * trials in one process); `destroy()` gives one's memory and handles back.
 */
export function createCudaBackend(options: CudaBackendOptions = {}): CreatedBackend | string {
  const found = openShared();
  if (typeof found === 'string') return found;
  const { device, registry, libraries, cublas } = found;
  const gemmOptions: GemmOptions = {
    allowTf32: options.allowTf32 ?? envFlag('REPRO_ALLOW_TF32'),
    nativeFp8: options.nativeFp8 ?? envFlag('REPRO_NATIVE_FP8'),
  };
  const runtime = new CudaRuntime(device, registry);
  const out = new BigUint64Array(1);
  checkCublas('cublasCreate', cublas.cublasCreate_v2(out));
  const handle = out[0]!;
  checkCublas('cublasSetStream', cublas.cublasSetStream_v2(handle, runtime.stream));
  checkCublas('cublasSetMathMode', cublas.cublasSetMathMode(handle, gemmOptions.allowTf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  // A workspace we own keeps cuBLAS from allocating inside a graph capture.
  const workspace = runtime.allocateScratch(WORKSPACE_BYTES);
  checkCublas('cublasSetWorkspace', cublas.cublasSetWorkspace_v2(handle, workspace.address, WORKSPACE_BYTES));
  const version = new Int32Array(1);
  checkCublas('cublasGetVersion', cublas.cublasGetVersion_v2(handle, version));
  let lt: { api: CublasLtApi; handle: Handle } | null = null;
  let ltVersion: number | null = null;
  if (found.lt) {
    checkCublas('cublasLtCreate', found.lt.cublasLtCreate(out));
    lt = { api: found.lt, handle: out[0]! };
    ltVersion = Number(found.lt.cublasLtGetVersion());
  }
  const host: GemmHost = {
    stream: runtime.stream,
    addressOf: (storage) => asCuda(storage, 'gemm').address,
    allocateScratch: (bytes) => runtime.allocateScratch(bytes),
    releaseScratch: (block) => runtime.releaseScratch(block),
    launchLinear: (kernel, count, args) => runtime.launchLinear(kernel, count, args),
    launchBlock: (kernel, args) => kernel.launch(runtime.stream, 1, 1, 128, 0, args),
    kernel: (name) => {
      const spec = GEMM_KERNELS[name]!;
      return runtime.kernel(spec.module, name, spec.kinds);
    },
  };
  const arch = device.info.computeCapability[0] * 10 + device.info.computeCapability[1];
  const smallGemms = options.smallGemms ?? process.env.REPRO_CUDA_SMALL_GEMM !== '0';
  const gemm = new CudaGemm(host, cublas, handle, lt, { address: workspace.address, bytes: WORKSPACE_BYTES }, gemmOptions, arch, smallGemms);
  const side = options.sideStream ?? process.env.REPRO_CUDA_SIDE_STREAM === '1' ? createSideStream(runtime, cublas, host, gemmOptions, arch) : null;
  const teardown = () => {
    if (side) {
      checkCublas('cublasDestroy', cublas.cublasDestroy_v2(side.handle));
      runtime.releaseScratch(side.workspace);
      for (const event of [side.fork, side.join]) checkDriver(runtime.api, 'cuEventDestroy', runtime.api.cuEventDestroy_v2(event));
      checkDriver(runtime.api, 'cuStreamDestroy', runtime.api.cuStreamDestroy_v2(side.stream));
    }
    checkCublas('cublasDestroy', cublas.cublasDestroy_v2(handle));
    if (lt) checkCublas('cublasLtDestroy', lt.api.cublasLtDestroy(lt.handle));
    runtime.releaseScratch(workspace);
  };
  return {
    backend: new CudaBackend(runtime, gemm, side, teardown),
    libraries,
    cublasVersion: version[0]!,
    cublasLtVersion: ltVersion,
  };
}

/** A second stream and cuBLAS handle (with its own workspace: two GEMMs in flight must not share one). */
function createSideStream(runtime: CudaRuntime, cublas: CublasApi, host: GemmHost, gemmOptions: GemmOptions, arch: number): SideStream {
  const api = runtime.api;
  const out = new BigUint64Array(1);
  checkDriver(api, 'cuStreamCreate', api.cuStreamCreate(out, CU_STREAM_NON_BLOCKING));
  const stream = out[0]!;
  checkCublas('cublasCreate', cublas.cublasCreate_v2(out));
  const handle = out[0]!;
  checkCublas('cublasSetStream', cublas.cublasSetStream_v2(handle, stream));
  checkCublas('cublasSetMathMode', cublas.cublasSetMathMode(handle, gemmOptions.allowTf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  const workspace = runtime.allocateScratch(WORKSPACE_BYTES);
  checkCublas('cublasSetWorkspace', cublas.cublasSetWorkspace_v2(handle, workspace.address, WORKSPACE_BYTES));
  const event = (): Handle => {
    checkDriver(api, 'cuEventCreate', api.cuEventCreate(out, CU_EVENT_DISABLE_TIMING));
    return out[0]!;
  };
  // Only plain FP32 products run here (CudaBackend.gemms), which need neither scratch nor kernels.
  const gemm = new CudaGemm({ ...host, stream }, cublas, handle, null, { address: workspace.address, bytes: WORKSPACE_BYTES }, gemmOptions, arch, false);
  return { stream, gemm, fork: event(), join: event(), handle, workspace };
}
