/**
 * What `repro doctor` reports about CUDA: the GPU, the driver, where each library was found (or
 * where it was looked for), compiler and BLAS versions, FP8 GEMM support, the kernel cache, and
 * a smoke test of a compiled kernel and a cuBLAS product against host arithmetic.
 */
import { existsSync, readdirSync } from 'node:fs';
import { kernelCacheDir, KERNEL_CACHE_ENV, KernelCompiler } from './compiler.ts';
import { bindCublas, bindCublasLt } from './cublas-api.ts';
import { createCudaBackend } from './create.ts';
import { formatCudaVersion, openDevice, type DeviceInfo } from './device.ts';
import { LIBRARY_DIR_ENV, searchedFolders, sonamesOf, type CudaLibraryName } from './libraries.ts';
import { isLoaded, loadCudaLibrary, type LibraryHandle } from './load-library.ts';
import { bindNvrtc, nvrtcVersion } from './nvrtc-api.ts';

export interface LibraryReport {
  readonly name: CudaLibraryName;
  readonly path: string | null;
  readonly source: string | null;
  readonly version: string | null;
  /** Why it was not found (what was looked at), or a problem reading its version. */
  readonly detail: string | null;
}

export interface DoctorReport {
  readonly gpu: ({ readonly available: true; readonly freeMemoryBytes: number } & DeviceInfo) | { readonly available: false; readonly reason: string };
  readonly libraries: readonly LibraryReport[];
  readonly compileTarget: string | null;
  readonly fp8Gemm: { readonly supported: boolean; readonly enabled: boolean; readonly reason: string };
  readonly tf32: boolean;
  readonly kernelCache: { readonly dir: string; readonly files: number };
  readonly smoke: { readonly ok: boolean; readonly detail: string } | null;
}

const PROBES: Record<CudaLibraryName, string> = { cuda: 'cuInit', nvrtc: 'nvrtcVersion', cublasLt: 'cublasLtCreate', cublas: 'cublasCreate_v2' };

function libraryVersion(name: CudaLibraryName, handle: LibraryHandle): string | null {
  switch (name) {
    case 'cuda':
      return null;
    case 'nvrtc':
      return nvrtcVersion(bindNvrtc(handle));
    case 'cublas': {
      const api = bindCublas(handle);
      const part = (type: number): number => {
        const value = new Int32Array(1);
        return api.cublasGetProperty(type, value) === 0 ? value[0]! : -1;
      };
      return `${part(0)}.${part(1)}.${part(2)}`;
    }
    case 'cublasLt': {
      const v = Number(bindCublasLt(handle).cublasLtGetVersion());
      return `${Math.floor(v / 10000)}.${Math.floor((v % 10000) / 100)}.${v % 100}`;
    }
  }
}

function reportLibrary(name: CudaLibraryName): LibraryReport {
  const loaded = loadCudaLibrary(name, PROBES[name]);
  if (!isLoaded(loaded)) return { name, path: null, source: null, version: null, detail: loaded.reason };
  try {
    return { name, path: loaded.path, source: loaded.source, version: libraryVersion(name, loaded.handle), detail: null };
  } catch (err) {
    return { name, path: loaded.path, source: loaded.source, version: null, detail: `version unreadable: ${(err as Error).message}` };
  }
}

function countCached(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir).filter((f) => f.endsWith('.cubin') || f.endsWith('.ptx')).length;
}

/** A 64×48 by 48×32 product and an exp, checked against float64 host arithmetic. */
function smokeTest(): { ok: boolean; detail: string } {
  const created = createCudaBackend();
  if (typeof created === 'string') return { ok: false, detail: created };
  const backend = created.backend;
  const m = 64, k = 48, n = 32;
  const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i * 0.37));
  const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i * 0.11));
  const started = performance.now();
  const [da, db, dc, de] = [backend.alloc(m * k, 'f32'), backend.alloc(k * n, 'f32'), backend.alloc(m * n, 'f32'), backend.alloc(m * k, 'f32')];
  backend.write(da, a);
  backend.write(db, b);
  backend.gemm({
    transA: false, transB: false, m, n, k, alpha: 1, a: da, aOffset: 0, lda: k, b: db, bOffset: 0, ldb: n,
    beta: 0, c: dc, cOffset: 0, ldc: n, batch: 1, strideA: 0, strideB: 0, strideC: 0,
  });
  backend.unary('exp', da, de, m * k, 1, 1);
  const c = backend.read(dc);
  const e = backend.read(de);
  const ms = performance.now() - started;
  let worst = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0, scale = 0;
      for (let p = 0; p < k; p++) {
        sum += a[i * k + p]! * b[p * n + j]!;
        scale += Math.abs(a[i * k + p]! * b[p * n + j]!);
      }
      worst = Math.max(worst, Math.abs(c[i * n + j]! - sum) / scale);
    }
  }
  for (let i = 0; i < m * k; i++) worst = Math.max(worst, Math.abs(e[i]! - Math.exp(a[i]!)) / Math.exp(a[i]!));
  for (const s of [da, db, dc, de]) backend.release(s);
  const ok = worst < 1e-5;
  return { ok, detail: `sgemm 64×48·48×32 and exp: largest relative error ${worst.toExponential(2)} (${ms.toFixed(0)} ms including kernel compile or cache load)` };
}

export function doctorReport(options: { smoke: boolean }): DoctorReport {
  const device = openDevice();
  const libraries = (['cuda', 'nvrtc', 'cublas', 'cublasLt'] as const).map(reportLibrary);
  const cacheDir = kernelCacheDir();
  const tf32 = process.env.REPRO_ALLOW_TF32 !== undefined && !['', '0', 'false'].includes(process.env.REPRO_ALLOW_TF32.toLowerCase());
  const fp8Enabled = process.env.REPRO_NATIVE_FP8 !== undefined && !['', '0', 'false'].includes(process.env.REPRO_NATIVE_FP8.toLowerCase());
  const ltFound = libraries.some((l) => l.name === 'cublasLt' && l.path !== null);
  if (typeof device === 'string') {
    return {
      gpu: { available: false, reason: device },
      libraries,
      compileTarget: null,
      fp8Gemm: { supported: false, enabled: fp8Enabled, reason: 'no GPU' },
      tf32,
      kernelCache: { dir: cacheDir, files: countCached(cacheDir) },
      smoke: null,
    };
  }
  const free = new BigUint64Array(1);
  const total = new BigUint64Array(1);
  device.api.cuMemGetInfo_v2(free, total);
  const [major, minor] = device.info.computeCapability;
  const compiler = KernelCompiler.create(device.info.computeCapability);
  const arch = major * 10 + minor;
  const fp8 =
    arch < 89
      ? { supported: false, reason: `compute capability ${major}.${minor} < 8.9` }
      : ltFound
        ? { supported: true, reason: 'cuBLASLt FP8 (E4M3) matmul available' }
        : { supported: false, reason: 'cuBLASLt not found' };
  return {
    gpu: { available: true, freeMemoryBytes: Number(free[0]), ...device.info },
    libraries,
    compileTarget: typeof compiler === 'string' ? null : `${compiler.target.option} (${compiler.target.kind})`,
    fp8Gemm: { ...fp8, enabled: fp8Enabled },
    tf32,
    kernelCache: { dir: cacheDir, files: countCached(cacheDir) },
    smoke: options.smoke ? smokeTest() : null,
  };
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

export function renderDoctorReport(r: DoctorReport): string {
  const lines: string[] = [];
  if (r.gpu.available) {
    const g = r.gpu;
    lines.push(`GPU:              ${g.name} (device ${g.ordinal}), compute capability ${g.computeCapability.join('.')}, ${g.multiprocessors} SMs`);
    lines.push(`memory:           ${gib(g.totalMemoryBytes)} total, ${gib(g.freeMemoryBytes)} free`);
    lines.push(`driver:           supports CUDA ${formatCudaVersion(g.driverVersion)}`);
  } else {
    lines.push(`GPU:              none usable — ${r.gpu.reason}`);
    lines.push('                  (--device cuda will fail with this reason; --device auto uses the CPU)');
  }
  for (const lib of r.libraries) {
    const label = `lib${lib.name}:`.padEnd(18);
    if (lib.path) lines.push(`${label}${lib.path} (${lib.source}${lib.version ? `, version ${lib.version}` : ''})${lib.detail ? ` — ${lib.detail}` : ''}`);
    else lines.push(`${label}not found — tried ${sonamesOf(lib.name).join(', ')} in ${searchedFolders(lib.name).join(', ')}`);
  }
  lines.push(`search override:  ${LIBRARY_DIR_ENV}=${process.env[LIBRARY_DIR_ENV] ?? '(unset)'}`);
  if (r.compileTarget) lines.push(`kernels compile:  NVRTC ${r.compileTarget}`);
  lines.push(`FP8 GEMM:         ${r.fp8Gemm.supported ? 'supported' : 'not supported'} (${r.fp8Gemm.reason}); native FP8 ${r.fp8Gemm.enabled ? 'on' : 'off'} (REPRO_NATIVE_FP8; e4m3/e5m2 products otherwise run exactly on FP16 tensor cores)`);
  lines.push(`TF32:             ${r.tf32 ? 'allowed for fp32 GEMMs' : 'off for fp32 GEMMs'} (REPRO_ALLOW_TF32)`);
  lines.push(`kernel cache:     ${r.kernelCache.dir} (${r.kernelCache.files} compiled modules; ${KERNEL_CACHE_ENV} overrides)`);
  if (r.smoke) lines.push(`smoke test:       ${r.smoke.ok ? 'ok' : 'FAILED'} — ${r.smoke.detail}`);
  return lines.join('\n');
}
