/**
 * koffi bindings to cuBLAS and cuBLASLt (the enum values are the stable ones of cublas_api.h,
 * cublasLt.h and library_types.h; the headers are not needed at run time).
 */
import type { Handle } from './driver-api.ts';
import type { LibraryHandle } from './load-library.ts';

export const CUBLAS_OP_N = 0;
export const CUBLAS_OP_T = 1;
export const CUBLAS_DEFAULT_MATH = 0;
export const CUBLAS_TF32_TENSOR_OP_MATH = 3;
export const CUBLAS_GEMM_DEFAULT = -1;

export const CUDA_R_32F = 0;
export const CUDA_R_16F = 2;
export const CUDA_R_16BF = 14;
export const CUDA_R_8F_E4M3 = 28;
export const CUDA_R_8F_E5M2 = 29;

export const CUBLAS_COMPUTE_32F = 68;
export const CUBLAS_COMPUTE_32F_FAST_TF32 = 77;

export const CUBLASLT_MATMUL_DESC_TRANSA = 3;
export const CUBLASLT_MATMUL_DESC_TRANSB = 4;
export const CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5;
export const CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6;
export const CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1;
/** sizeof(cublasLtMatmulHeuristicResult_t): algo (64 bytes), workspaceSize, state, wavesCount, reserved[4]. */
export const HEURISTIC_RESULT_BYTES = 96;

const STATUS_NAMES: Record<number, string> = {
  0: 'CUBLAS_STATUS_SUCCESS',
  1: 'CUBLAS_STATUS_NOT_INITIALIZED',
  3: 'CUBLAS_STATUS_ALLOC_FAILED',
  7: 'CUBLAS_STATUS_INVALID_VALUE',
  8: 'CUBLAS_STATUS_ARCH_MISMATCH',
  11: 'CUBLAS_STATUS_MAPPING_ERROR',
  13: 'CUBLAS_STATUS_EXECUTION_FAILED',
  14: 'CUBLAS_STATUS_INTERNAL_ERROR',
  15: 'CUBLAS_STATUS_NOT_SUPPORTED',
  16: 'CUBLAS_STATUS_LICENSE_ERROR',
};

type Fn = (...args: never[]) => number;

export interface CublasApi {
  cublasCreate_v2(handle: BigUint64Array): number;
  cublasDestroy_v2(handle: Handle): number;
  cublasGetVersion_v2(handle: Handle, version: Int32Array): number;
  /** Library version parts without a handle (and without a GPU): type 0 major, 1 minor, 2 patch. */
  cublasGetProperty(type: number, value: Int32Array): number;
  cublasSetStream_v2(handle: Handle, stream: Handle): number;
  cublasSetMathMode(handle: Handle, mode: number): number;
  cublasSetWorkspace_v2(handle: Handle, workspace: number, bytes: number): number;
  cublasSgemmBatched(
    handle: Handle, transA: number, transB: number, m: number, n: number, k: number, alpha: Float32Array,
    a: number, lda: number, b: number, ldb: number, beta: Float32Array, c: number, ldc: number, batch: number,
  ): number;
  cublasSgemmStridedBatched(
    handle: Handle, transA: number, transB: number, m: number, n: number, k: number,
    alpha: Float32Array, a: number, lda: number, strideA: number, b: number, ldb: number, strideB: number,
    beta: Float32Array, c: number, ldc: number, strideC: number, batch: number,
  ): number;
  cublasGemmStridedBatchedEx(
    handle: Handle, transA: number, transB: number, m: number, n: number, k: number,
    alpha: Float32Array, a: number, aType: number, lda: number, strideA: number,
    b: number, bType: number, ldb: number, strideB: number,
    beta: Float32Array, c: number, cType: number, ldc: number, strideC: number,
    batch: number, computeType: number, algo: number,
  ): number;
}

export interface CublasLtApi {
  cublasLtCreate(handle: BigUint64Array): number;
  cublasLtDestroy(handle: Handle): number;
  cublasLtGetVersion(): number;
  cublasLtMatmulDescCreate(desc: BigUint64Array, computeType: number, scaleType: number): number;
  cublasLtMatmulDescDestroy(desc: Handle): number;
  cublasLtMatmulDescSetAttribute(desc: Handle, attribute: number, value: Int32Array, bytes: number): number;
  cublasLtMatrixLayoutCreate(layout: BigUint64Array, type: number, rows: number, cols: number, ld: number): number;
  cublasLtMatrixLayoutDestroy(layout: Handle): number;
  cublasLtMatrixLayoutSetAttribute(layout: Handle, attribute: number, value: Int32Array | BigInt64Array, bytes: number): number;
  cublasLtMatmulPreferenceCreate(pref: BigUint64Array): number;
  cublasLtMatmulPreferenceDestroy(pref: Handle): number;
  cublasLtMatmulPreferenceSetAttribute(pref: Handle, attribute: number, value: BigUint64Array, bytes: number): number;
  cublasLtMatmulAlgoGetHeuristic(
    handle: Handle, desc: Handle, aLayout: Handle, bLayout: Handle, cLayout: Handle, dLayout: Handle,
    pref: Handle, requested: number, results: Handle, returned: Int32Array,
  ): number;
  cublasLtMatmul(
    handle: Handle, desc: Handle, alpha: Float32Array, a: number, aLayout: Handle, b: number, bLayout: Handle,
    beta: Float32Array, c: number, cLayout: Handle, d: number, dLayout: Handle, algo: Handle,
    workspace: number, workspaceBytes: number, stream: Handle,
  ): number;
}

const CUBLAS_PROTOTYPES: Record<keyof CublasApi, string> = {
  cublasCreate_v2: 'int cublasCreate_v2(void *handle)',
  cublasDestroy_v2: 'int cublasDestroy_v2(void *handle)',
  cublasGetVersion_v2: 'int cublasGetVersion_v2(void *handle, void *version)',
  cublasGetProperty: 'int cublasGetProperty(int type, void *value)',
  cublasSetStream_v2: 'int cublasSetStream_v2(void *handle, void *stream)',
  cublasSetMathMode: 'int cublasSetMathMode(void *handle, int mode)',
  cublasSetWorkspace_v2: 'int cublasSetWorkspace_v2(void *handle, uint64_t workspace, size_t bytes)',
  cublasSgemmBatched:
    'int cublasSgemmBatched(void *handle, int transA, int transB, int m, int n, int k, void *alpha, ' +
    'uint64_t a, int lda, uint64_t b, int ldb, void *beta, uint64_t c, int ldc, int batch)',
  cublasSgemmStridedBatched:
    'int cublasSgemmStridedBatched(void *handle, int transA, int transB, int m, int n, int k, void *alpha, ' +
    'uint64_t a, int lda, long long strideA, uint64_t b, int ldb, long long strideB, void *beta, ' +
    'uint64_t c, int ldc, long long strideC, int batch)',
  cublasGemmStridedBatchedEx:
    'int cublasGemmStridedBatchedEx(void *handle, int transA, int transB, int m, int n, int k, void *alpha, ' +
    'uint64_t a, int aType, int lda, long long strideA, uint64_t b, int bType, int ldb, long long strideB, ' +
    'void *beta, uint64_t c, int cType, int ldc, long long strideC, int batch, int computeType, int algo)',
};

const CUBLASLT_PROTOTYPES: Record<keyof CublasLtApi, string> = {
  cublasLtCreate: 'int cublasLtCreate(void *handle)',
  cublasLtDestroy: 'int cublasLtDestroy(void *handle)',
  cublasLtGetVersion: 'size_t cublasLtGetVersion()',
  cublasLtMatmulDescCreate: 'int cublasLtMatmulDescCreate(void *desc, int computeType, int scaleType)',
  cublasLtMatmulDescDestroy: 'int cublasLtMatmulDescDestroy(void *desc)',
  cublasLtMatmulDescSetAttribute: 'int cublasLtMatmulDescSetAttribute(void *desc, int attribute, void *value, size_t bytes)',
  cublasLtMatrixLayoutCreate: 'int cublasLtMatrixLayoutCreate(void *layout, int type, uint64_t rows, uint64_t cols, int64_t ld)',
  cublasLtMatrixLayoutDestroy: 'int cublasLtMatrixLayoutDestroy(void *layout)',
  cublasLtMatrixLayoutSetAttribute: 'int cublasLtMatrixLayoutSetAttribute(void *layout, int attribute, void *value, size_t bytes)',
  cublasLtMatmulPreferenceCreate: 'int cublasLtMatmulPreferenceCreate(void *pref)',
  cublasLtMatmulPreferenceDestroy: 'int cublasLtMatmulPreferenceDestroy(void *pref)',
  cublasLtMatmulPreferenceSetAttribute: 'int cublasLtMatmulPreferenceSetAttribute(void *pref, int attribute, void *value, size_t bytes)',
  cublasLtMatmulAlgoGetHeuristic:
    'int cublasLtMatmulAlgoGetHeuristic(void *handle, void *desc, void *a, void *b, void *c, void *d, void *pref, ' +
    'int requested, void *results, void *returned)',
  cublasLtMatmul:
    'int cublasLtMatmul(void *handle, void *desc, void *alpha, uint64_t a, void *aLayout, uint64_t b, void *bLayout, ' +
    'void *beta, uint64_t c, void *cLayout, uint64_t d, void *dLayout, void *algo, uint64_t workspace, ' +
    'size_t workspaceBytes, void *stream)',
};

function bind<T>(lib: LibraryHandle, prototypes: Record<string, string>): T {
  const api: Record<string, Fn> = {};
  for (const [name, prototype] of Object.entries(prototypes)) api[name] = lib.func(prototype) as Fn;
  return api as unknown as T;
}

export function bindCublas(lib: LibraryHandle): CublasApi {
  return bind<CublasApi>(lib, CUBLAS_PROTOTYPES);
}

export function bindCublasLt(lib: LibraryHandle): CublasLtApi {
  return bind<CublasLtApi>(lib, CUBLASLT_PROTOTYPES);
}

export function cublasStatusName(code: number): string {
  return STATUS_NAMES[code] ?? `cuBLAS status ${code}`;
}

export function checkCublas(call: string, code: number): void {
  if (code !== 0) throw new Error(`${call} failed: ${cublasStatusName(code)} (${code})`);
}
