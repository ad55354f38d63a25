// Locates a system CBLAS through koffi. Probing happens on first use only, so importing the CPU
// backend costs nothing on machines without BLAS, and every failure means "no BLAS", never a crash.
import { realpathSync } from 'node:fs';
import koffi, { type LibraryHandle } from 'koffi';

/** Which implementation sits behind the library: decides whether it is worth calling at all. */
export type BlasVendor = 'openblas' | 'mkl' | 'blis' | 'atlas' | 'accelerate' | 'reference';

export const CBLAS_ROW_MAJOR = 101;
export const CBLAS_NO_TRANS = 111;
export const CBLAS_TRANS = 112;

export type CblasSgemm = (
  order: number, transA: number, transB: number, m: number, n: number, k: number,
  alpha: number, a: Float32Array, lda: number, b: Float32Array, ldb: number,
  beta: number, c: Float32Array, ldc: number,
) => void;

export interface CblasLibrary {
  /** Resolved file of the library that exports `cblas_sgemm` (symlinks followed). */
  path: string;
  vendor: BlasVendor;
  /** True when the library came from REPRO_BLAS rather than the built-in search. */
  explicit: boolean;
  sgemm: CblasSgemm;
}

const SGEMM_SIGNATURE =
  'void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, ' +
  'const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)';

const ACCELERATE_PATH =
  '/System/Library/Frameworks/Accelerate.framework/Versions/Current/Frameworks/vecLib.framework/vecLib';

/** Probe order: explicit override, then optimised libraries by name, then generic sonames. */
export function blasCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const candidates: string[] = [];
  const override = env.REPRO_BLAS?.trim();
  if (override) candidates.push(override);
  candidates.push('libopenblas.so.0', 'libopenblas.so', 'libblas.so.3', 'libcblas.so.3');
  if (process.platform === 'darwin') candidates.push(ACCELERATE_PATH);
  return candidates;
}

let probed = false;
let found: CblasLibrary | null = null;
const probeFailures: string[] = [];

/** The first loadable CBLAS, or null. Probes once per process. */
export function findCblas(): CblasLibrary | null {
  if (probed) return found;
  probed = true;
  const override = process.env.REPRO_BLAS?.trim();
  for (const candidate of blasCandidates()) {
    try {
      found = { ...loadCblas(candidate), explicit: candidate === override };
      return found;
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      probeFailures.push(`${candidate}: ${reason}`);
      // A path the user named explicitly deserves a word when it is unusable; the built-in
      // candidates are expected to be missing on many machines.
      if (candidate === override) {
        process.emitWarning(`REPRO_BLAS=${override} could not be used (${reason}); probing the default libraries`);
      }
    }
  }
  return null;
}

/** Why each candidate was rejected (empty until `findCblas()` has run). */
export function blasProbeFailures(): readonly string[] {
  return probeFailures;
}

/** Loads one library and binds `cblas_sgemm`; throws if either step fails. */
export function loadCblas(candidate: string): Omit<CblasLibrary, 'explicit'> {
  const library = koffi.load(candidate);
  const sgemm = library.func(SGEMM_SIGNATURE) as unknown as CblasSgemm;
  const path = definingFile(library, candidate);
  return { path, vendor: detectVendor(library, path), sgemm };
}

function hasSymbol(library: LibraryHandle, name: string): boolean {
  try {
    library.symbol(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * Vendor by exported symbols rather than by file name: Debian's libblas.so.3 is an alternatives
 * symlink that may point at OpenBLAS, BLIS or the netlib reference implementation.
 */
function detectVendor(library: LibraryHandle, path: string): BlasVendor {
  if (hasSymbol(library, 'openblas_get_config')) return 'openblas';
  if (hasSymbol(library, 'MKL_Get_Version') || hasSymbol(library, 'mkl_serv_get_version')) return 'mkl';
  if (hasSymbol(library, 'bli_info_get_version_str')) return 'blis';
  if (hasSymbol(library, 'ATL_xerbla')) return 'atlas';
  if (path.includes('Accelerate.framework') || path.includes('vecLib')) return 'accelerate';
  return 'reference';
}

/** The file that actually provides `cblas_sgemm`, via dladdr; falls back to the name we loaded. */
function definingFile(library: LibraryHandle, candidate: string): string {
  let file = candidate;
  try {
    const address = library.symbol('cblas_sgemm') as unknown;
    const fileName = dladdrFileName(address);
    if (fileName) file = fileName;
  } catch {
    // dladdr is a nicety for reporting; the library works without it.
  }
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}

interface DlInfo {
  dli_fname: string | null;
}

let dladdrBinding: ((address: unknown, info: Partial<DlInfo>) => number) | null | undefined;

function dladdrFileName(address: unknown): string | null {
  if (dladdrBinding === undefined) {
    dladdrBinding = null;
    const libc = process.platform === 'darwin' ? '/usr/lib/libSystem.B.dylib' : 'libc.so.6';
    const dlInfo = koffi.struct({
      dli_fname: 'const char *', dli_fbase: 'void *', dli_sname: 'const char *', dli_saddr: 'void *',
    });
    try {
      dladdrBinding = koffi.load(libc).func('dladdr', 'int', ['const void *', koffi.out(koffi.pointer(dlInfo))]) as
        unknown as (address: unknown, info: Partial<DlInfo>) => number;
    } catch {
      return null;
    }
  }
  if (!dladdrBinding) return null;
  const info: Partial<DlInfo> = {};
  if (dladdrBinding(address, info) === 0) return null;
  return info.dli_fname ?? null;
}
