/**
 * Row-major batched GEMM on cuBLAS. A row-major C = op(A)·op(B) is the column-major
 * Cᵀ = op(B)ᵀ·op(A)ᵀ, so cuBLAS gets the operands swapped (B first) with the same transpose flags.
 *
 * Products of at most SMALL_GEMM_MACS multiply-adds (the recurrent cell's per-timestep ones) run
 * on our own FP32 kernel, whatever their format tag (except native FP8). Larger ones take a path
 * by GemmParams.inputFormat (values are already quantised by the engine, so every path equals
 * the FP32 product up to accumulation order):
 * - fp32 (default): cublasSgemmStridedBatched; TF32 tensor cores only when the backend allows it.
 * - tf32: cublasGemmStridedBatchedEx with CUBLAS_COMPUTE_32F_FAST_TF32.
 * - fp16 / bf16: both operands packed to 16-bit scratch, cublasGemmStridedBatchedEx, FP32 output.
 * - e4m3 / e5m2: the FP16 path, which is exact for every FP8 value (the paper's Graphcore-style
 *   formats as well as OCP's). The paper's E4M3 is not a subset of OCP E4M3 (its 2^-10 spacing
 *   below 2^-6 has no OCP code), so a native FP8 GEMM would round them again. With
 *   `nativeFp8` (for models quantised to OCP E4M3) 'e4m3' products go through cuBLASLt's FP8
 *   matmul instead, on compute capability ≥ 8.9; 'e5m2' products stay on FP16 because the
 *   engine tags mixed E5M2×E4M3 backward products 'e5m2' and cuBLASLt has no E5M2×E5M2 kernel.
 */
import koffi from 'koffi';
import { checkOperandTypes, operandRounding } from '../gemm-rules.ts';
import { bytesPerElement, isFormat16, type GemmParams, type Storage } from '../backend.ts';
import type { Block } from './allocator.ts';
import {
  CUBLASLT_MATMUL_DESC_TRANSA,
  CUBLASLT_MATMUL_DESC_TRANSB,
  CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
  CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
  CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
  CUBLAS_COMPUTE_32F,
  CUBLAS_COMPUTE_32F_FAST_TF32,
  CUBLAS_GEMM_DEFAULT,
  CUBLAS_OP_N,
  CUBLAS_OP_T,
  CUDA_R_16BF,
  CUDA_R_16F,
  CUDA_R_32F,
  CUDA_R_8F_E4M3,
  HEURISTIC_RESULT_BYTES,
  checkCublas,
  cublasStatusName,
  type CublasApi,
  type CublasLtApi,
} from './cublas-api.ts';
import type { Handle } from './driver-api.ts';
import { writeWideWords, type Kernel, type ParamKind } from './launch.ts';
import { POINTER_WORDS } from './kernels/gemm-small.ts';

/** What the GEMM needs from the backend. */
export interface GemmHost {
  readonly stream: Handle;
  addressOf(storage: Storage): number;
  allocateScratch(bytes: number): Block;
  releaseScratch(block: Block): void;
  /** Launches a grid-stride kernel over `count` items. */
  launchLinear(kernel: Kernel, count: number, args: readonly (number | Int32Array)[]): void;
  /** Launches one block of 128 threads. */
  launchBlock(kernel: Kernel, args: readonly (number | Int32Array)[]): void;
  kernel(name: 'scale_matrices' | 'pack_f16' | 'pack_bf16' | 'pack_e4m3' | 'gemm_small' | 'sum_chunks' | 'write_words' | 'sum_chunks_table'): Kernel;
}

export interface GemmOptions {
  readonly allowTf32: boolean;
  readonly nativeFp8: boolean;
}

/** Parameter kinds of pack_f16 and pack_bf16 (kernels/convert.ts). */
export const PACK16_KINDS: readonly ParamKind[] = ['p', 'p', 'i', 'i', 'l', 'l', 'l', 'i', 'i', 'i', 'i'];

/** Windows to pack: `batches` row-major rows×cols matrices, entry p·batch1 + q at address + p·strides[0] + q·strides[1] (elements). */
export interface PackSource {
  readonly address: number;
  readonly rows: number;
  readonly cols: number;
  readonly ld: number;
  readonly strides: readonly [number, number];
  readonly batch1: number;
  readonly batches: number;
}

/** Packs windows densely (ld = cols) into 16-bit values at `dst`. */
export function launchPack16(host: Pick<GemmHost, 'kernel' | 'launchLinear'>, kernelName: 'pack_f16' | 'pack_bf16', src: PackSource, dst: number): void {
  const totalRows = src.rows * src.batches;
  if (totalRows === 0 || src.cols === 0) return;
  if (totalRows > 0x7fffffff) throw new RangeError(`${kernelName}: ${totalRows} rows exceed the kernel's 32-bit row index`);
  const vec = src.cols % 4 === 0 && src.address % 16 === 0 && dst % 8 === 0 && [src.ld, src.strides[0], src.strides[1]].every((s) => s % 4 === 0);
  const groups = vec ? src.cols / 4 : src.cols;
  // Threads per row: a power of two covering the row's groups, at most a block.
  const laneShift = Math.min(8, Math.ceil(Math.log2(groups)));
  host.launchLinear(host.kernel(kernelName), totalRows * 2 ** laneShift, [
    src.address, dst, src.rows, src.cols, src.ld, src.strides[0], src.strides[1], src.batch1, totalRows, vec ? 1 : 0, laneShift,
  ]);
}

/** A row-major operand as stored: `rows`×`cols` with leading dimension `ld`. */
interface Operand {
  readonly address: number;
  readonly rows: number;
  readonly cols: number;
  readonly ld: number;
  readonly stride: number;
  /** The values are 16-bit (of the product's format) where they lie: nothing to pack. */
  readonly stored16: boolean;
}

interface LtPlan {
  readonly desc: Handle;
  readonly layouts: readonly [Handle, Handle, Handle];
  /** The heuristic's result; its first 64 bytes are the algorithm. */
  readonly algo: Handle;
}

/**
 * Products of at most this many multiply-adds run on gemm_small (kernels/gemm-small.ts): below
 * it a cuBLAS call (plus two operand packs for 16-bit inputs) costs more than the arithmetic.
 */
export const SMALL_GEMM_MACS = 2 ** 20;

/** splitK applies to batched products of at most this many outputs per batch entry… */
export const SPLIT_K_MAX_OUTPUTS = 128 * 128;
/** …and at least this long a k. */
export const SPLIT_K_MIN_K = 1024;

export class CudaGemm {
  /** Why a requested native FP8 product ran on another path (each reason once). */
  readonly fallbacks = new Set<string>();
  /** Products by the path that ran them, for tests and the doctor. */
  readonly counts = { fp32: 0, tf32: 0, fp16: 0, bf16: 0, fp8: 0, scale: 0, small: 0, packs: 0, splitK: 0, grouped: 0 };
  /** While splitK runs a product: where its partial products go instead of C. */
  private partsAddress: number | null = null;
  /** During runAll: 16-bit packs of operands, shared by the products that read the same one. */
  private sharedPacks: Map<string, { block: Block; packed: Operand }> | null = null;
  private readonly alpha = new Float32Array(1);
  private readonly beta = new Float32Array(1);
  private readonly ltPlans = new Map<string, LtPlan | string>();

  constructor(
    private readonly host: GemmHost,
    private readonly cublas: CublasApi,
    private readonly handle: Handle,
    private readonly lt: { api: CublasLtApi; handle: Handle } | null,
    private readonly workspace: { address: number; bytes: number },
    private readonly options: GemmOptions,
    /** Compute capability as major·10 + minor. */
    private readonly arch: number,
    /** Run products below SMALL_GEMM_MACS on our own kernel (it launches on the main stream). */
    private readonly smallProducts = true,
  ) {}

  /** Whether 'e4m3' products may use cuBLASLt's FP8 matmul here (and why not). */
  fp8Support(): { supported: boolean; reason: string } {
    if (this.arch < 89) return { supported: false, reason: `compute capability ${Math.floor(this.arch / 10)}.${this.arch % 10} < 8.9` };
    if (!this.lt) return { supported: false, reason: 'cuBLASLt not loaded' };
    return { supported: true, reason: 'cuBLASLt FP8 (E4M3) matmul, compute capability ≥ 8.9' };
  }

  /**
   * Independent products (none writes what another reads), e.g. a matmul's input and weight
   * gradients, which both read the incoming gradient: a 16-bit operand stored the same way in
   * several of them is packed once.
   */
  runAll(params: readonly GemmParams[]): void {
    if (params.length < 2) {
      for (const p of params) this.run(p);
      return;
    }
    const packs = new Map<string, { block: Block; packed: Operand }>();
    this.sharedPacks = packs;
    try {
      const single: GemmParams[] = [];
      for (const group of groupByShape(params, (p) => this.groupable(p))) {
        if (group.length > 1) this.grouped(group);
        else single.push(group[0]!);
      }
      for (const p of single) this.run(p);
    } finally {
      this.sharedPacks = null;
      for (const { block } of packs.values()) this.host.releaseScratch(block);
    }
  }

  run(p: GemmParams): void {
    validate(p);
    if (p.m === 0 || p.n === 0 || p.batch === 0) return;
    if (p.alpha === 0 || p.k === 0) {
      this.scaleC(p);
      return;
    }
    const format = p.inputFormat ?? 'fp32';
    // Operands to be rounded as read go to the 16-bit path, whose packing rounds them; gemm_small reads float32 as it is.
    // 16-bit operands (storage) too: gemm_small reads float32.
    const rounds = operandRounding(p) !== null || p.a.dtype !== 'f32' || p.b.dtype !== 'f32' || p.c.dtype !== 'f32';
    if (this.smallProducts && !rounds && p.m * p.n * p.k * p.batch <= SMALL_GEMM_MACS && format !== 'tf32' && !(format === 'e4m3' && this.options.nativeFp8)) {
      this.small(p);
      this.counts.small++;
      return;
    }
    if (this.splitK(p, format)) return;
    this.dispatch(p, format);
  }

  /**
   * Unbatched FP32 products that cuBLAS would run on their own (not gemm_small's): several of one
   * shape run as one cublasSgemmBatched call. At the paper's size a weight gradient ([128, 384]
   * over k = 2048) fills few multiprocessors and cuBLAS adds a split-k reduction kernel to it;
   * the eight layers' products side by side fill the GPU in one launch.
   */
  private groupable(p: GemmParams): boolean {
    const format = p.inputFormat ?? 'fp32';
    return (format === 'fp32' || format === 'tf32') && p.batch === 1 && p.alpha !== 0 && p.k > 0 && p.m > 0 && p.n > 0 && !(this.smallProducts && p.m * p.n * p.k <= SMALL_GEMM_MACS);
  }

  /**
   * Products of one shape (groupByShape) as one cublasSgemmBatched call over device pointer arrays.
   * A long k is cut into GROUP_SPLIT_K chunks that run as extra batch entries (without it each
   * block of a 2048-deep weight gradient walks all of k: 64-100 µs a group on the H200), written
   * to scratch and summed in chunk order by one sum_chunks_table launch.
   */
  private grouped(group: readonly GemmParams[]): void {
    for (const p of group) validate(p);
    const p0 = group[0]!;
    const count = group.length;
    const chunks = groupChunks(p0.k);
    const kc = p0.k / chunks;
    const size = p0.m * p0.n;
    const parts = chunks > 1 ? this.host.allocateScratch(4 * size * count * chunks) : null;
    // Column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLAS's A array holds our B operands, its B array our A's.
    const bPointers: number[] = [];
    const aPointers: number[] = [];
    const cPointers: number[] = [];
    group.forEach((p, e) => {
      const a = this.host.addressOf(p.a) + 4 * p.aOffset;
      const b = this.host.addressOf(p.b) + 4 * p.bOffset;
      for (let c = 0; c < chunks; c++) {
        // Chunk c of k: columns c·kc… of op(A) and rows c·kc… of op(B), as stored.
        aPointers.push(a + 4 * c * kc * (p.transA ? p.lda : 1));
        bPointers.push(b + 4 * c * kc * (p.transB ? 1 : p.ldb));
        cPointers.push(parts ? parts.address + 4 * size * (e * chunks + c) : this.host.addressOf(p.c) + 4 * p.cOffset);
      }
    });
    const finals = parts ? group.map((p) => this.host.addressOf(p.c) + 4 * p.cOffset) : [];
    const pointers = [...bPointers, ...aPointers, ...cPointers, ...finals];
    const entries = count * chunks;
    const table = this.host.allocateScratch(8 * pointers.length);
    try {
      const write = this.host.kernel('write_words');
      const perLaunch = POINTER_WORDS / 2;
      for (let first = 0; first < pointers.length; first += perLaunch) {
        const chunk = pointers.slice(first, first + perLaunch);
        const words = new Int32Array(POINTER_WORDS);
        writeWideWords(words, chunk);
        this.host.launchBlock(write, [words, 2 * chunk.length, table.address + 8 * first]);
      }
      this.alpha[0] = p0.alpha;
      this.beta[0] = parts ? 0 : p0.beta;
      const code = this.cublas.cublasSgemmBatched(
        this.handle, p0.transB ? CUBLAS_OP_T : CUBLAS_OP_N, p0.transA ? CUBLAS_OP_T : CUBLAS_OP_N, p0.n, p0.m, kc,
        this.alpha, table.address, p0.ldb, table.address + 8 * entries, p0.lda, this.beta, table.address + 16 * entries, parts ? p0.n : p0.ldc, entries,
      );
      checkCublas('cublasSgemmBatched', code);
      if (parts) {
        this.host.launchLinear(this.host.kernel('sum_chunks_table'), size * count, [
          parts.address, table.address + 24 * entries, p0.m, p0.n, p0.ldc, count, chunks, p0.beta,
        ]);
      }
    } finally {
      this.host.releaseScratch(table);
      if (parts) this.host.releaseScratch(parts);
    }
    this.counts.fp32 += count;
    this.counts.grouped++;
  }

  private dispatch(p: GemmParams, format: NonNullable<GemmParams['inputFormat']>): void {
    switch (format) {
      case 'fp32':
        this.sgemm(p);
        return;
      case 'tf32':
        this.gemmEx(p, this.operand(p, 'a'), this.operand(p, 'b'), CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32);
        this.counts.tf32++;
        return;
      case 'bf16':
        this.packed16(p, 'pack_bf16', CUDA_R_16BF);
        this.counts.bf16++;
        return;
      case 'fp16':
        this.packed16(p, 'pack_f16', CUDA_R_16F);
        this.counts.fp16++;
        return;
      case 'e4m3':
        if (this.options.nativeFp8 && this.fp8(p)) {
          this.counts.fp8++;
          return;
        }
        this.packed16(p, 'pack_f16', CUDA_R_16F);
        this.counts.fp16++;
        return;
      case 'e5m2':
        this.packed16(p, 'pack_f16', CUDA_R_16F);
        this.counts.fp16++;
        return;
    }
  }

  /**
   * A batched product with few output tiles over a long k, such as a per-head weight gradient
   * summed over every position ([256, 64] outputs, k = 2048): cuBLAS runs it on a few dozen
   * blocks and leaves most multiprocessors idle (it splits k itself only for unbatched products).
   * Here k is cut into chunks that run as extra batch entries, each writing its partial product
   * to scratch, and sum_chunks adds them in chunk order into C. Only where each operand's batch
   * stride is exactly its chunks' stride times their number, so one strided batch covers both.
   * FP32 products only: with 16-bit operands cuBLAS's tensor-core kernels did as well unsplit (on
   * the H200, charlm-attention FP16 took 4.05 ms a step split against 3.98 unsplit).
   */
  private splitK(p: GemmParams, format: NonNullable<GemmParams['inputFormat']>): boolean {
    if (format !== 'fp32' || p.batch < 2 || p.m * p.n > SPLIT_K_MAX_OUTPUTS || p.k < SPLIT_K_MIN_K) return false;
    const chunks = [16, 8, 4].find((c) => p.k % c === 0 && p.k / c >= 128);
    if (chunks === undefined) return false;
    const kc = p.k / chunks;
    const chunkA = kc * (p.transA ? p.lda : 1);
    const chunkB = kc * (p.transB ? 1 : p.ldb);
    if (p.strideA !== chunks * chunkA || p.strideB !== chunks * chunkB) return false;
    const size = p.m * p.n;
    const parts = this.host.allocateScratch(4 * size * p.batch * chunks);
    try {
      this.partsAddress = parts.address;
      this.dispatch({ ...p, k: kc, batch: p.batch * chunks, strideA: chunkA, strideB: chunkB, beta: 0, cOffset: 0, ldc: p.n, strideC: size }, format);
    } finally {
      this.partsAddress = null;
    }
    this.host.launchLinear(this.host.kernel('sum_chunks'), size * p.batch, [parts.address, this.cAddress(p), p.m, p.n, p.ldc, p.strideC, p.batch, chunks, p.beta]);
    this.host.releaseScratch(parts);
    this.counts.splitK++;
    return true;
  }

  private operand(p: GemmParams, which: 'a' | 'b'): Operand {
    // Stored shapes: A is m×k (k×m when transposed), B is k×n (n×k when transposed).
    if (which === 'a') {
      const [rows, cols] = p.transA ? [p.k, p.m] : [p.m, p.k];
      return { address: this.host.addressOf(p.a) + bytesPerElement(p.a.dtype) * p.aOffset, rows, cols, ld: p.lda, stride: p.strideA, stored16: isFormat16(p.a.dtype) };
    }
    const [rows, cols] = p.transB ? [p.n, p.k] : [p.k, p.n];
    return { address: this.host.addressOf(p.b) + bytesPerElement(p.b.dtype) * p.bOffset, rows, cols, ld: p.ldb, stride: p.strideB, stored16: isFormat16(p.b.dtype) };
  }

  private cAddress(p: GemmParams): number {
    if (this.partsAddress !== null) return this.partsAddress;
    return this.host.addressOf(p.c) + bytesPerElement(p.c.dtype) * p.cOffset;
  }

  private sgemm(p: GemmParams): void {
    this.alpha[0] = p.alpha;
    this.beta[0] = p.beta;
    const a = this.host.addressOf(p.a) + 4 * p.aOffset;
    const b = this.host.addressOf(p.b) + 4 * p.bOffset;
    const code = this.cublas.cublasSgemmStridedBatched(
      this.handle, p.transB ? CUBLAS_OP_T : CUBLAS_OP_N, p.transA ? CUBLAS_OP_T : CUBLAS_OP_N, p.n, p.m, p.k,
      this.alpha, b, p.ldb, p.strideB, a, p.lda, p.strideA, this.beta, this.cAddress(p), p.ldc, p.strideC, p.batch,
    );
    checkCublas('cublasSgemmStridedBatched', code);
    this.counts.fp32++;
  }

  private gemmEx(p: GemmParams, a: Operand, b: Operand, type: number, compute: number): void {
    this.alpha[0] = p.alpha;
    this.beta[0] = p.beta;
    const code = this.cublas.cublasGemmStridedBatchedEx(
      this.handle, p.transB ? CUBLAS_OP_T : CUBLAS_OP_N, p.transA ? CUBLAS_OP_T : CUBLAS_OP_N, p.n, p.m, p.k,
      this.alpha, b.address, type, b.ld, b.stride, a.address, type, a.ld, a.stride,
      this.beta, this.cAddress(p), isFormat16(p.c.dtype) ? type : CUDA_R_32F, p.ldc, p.strideC, p.batch, compute, CUBLAS_GEMM_DEFAULT,
    );
    checkCublas('cublasGemmStridedBatchedEx', code);
  }

  /** Packs an operand as stored (same layout, ld = cols) into 16-bit scratch. */
  private pack(kernelName: 'pack_f16' | 'pack_bf16', operand: Operand, batch: number, bytesPerValue: number): { block: Block; packed: Operand } {
    const batches = operand.stride === 0 ? 1 : batch;
    const perBatch = operand.rows * operand.cols;
    const block = this.host.allocateScratch(Math.max(1, perBatch * batches * bytesPerValue));
    launchPack16(this.host, kernelName, { ...operand, strides: [operand.stride, 0], batch1: 1, batches }, block.address);
    return {
      block,
      packed: { address: block.address, rows: operand.rows, cols: operand.cols, ld: Math.max(1, operand.cols), stride: operand.stride === 0 ? 0 : perBatch, stored16: true },
    };
  }

  /**
   * pack(), or inside runAll the pack an earlier product of the call made of the same operand; an
   * operand already in 16-bit storage (of the product's format: checkOperandTypes) as it is.
   */
  private packShared(kernelName: 'pack_f16' | 'pack_bf16', operand: Operand, batch: number): { block: Block | null; packed: Operand } {
    if (operand.stored16) return { block: null, packed: operand };
    const shared = this.sharedPacks;
    const key = `${kernelName}:${operand.address}:${operand.rows}:${operand.cols}:${operand.ld}:${operand.stride}:${operand.stride === 0 ? 1 : batch}`;
    const earlier = shared?.get(key);
    if (earlier) return earlier;
    const made = this.pack(kernelName, operand, batch, 2);
    this.counts.packs++;
    shared?.set(key, made);
    return made;
  }

  private packed16(p: GemmParams, kernelName: 'pack_f16' | 'pack_bf16', type: number): void {
    const a = this.packShared(kernelName, this.operand(p, 'a'), p.batch);
    const b = this.packShared(kernelName, this.operand(p, 'b'), p.batch);
    try {
      this.gemmEx(p, a.packed, b.packed, type, CUBLAS_COMPUTE_32F);
    } finally {
      // Shared packs are released when runAll ends.
      if (!this.sharedPacks) {
        if (a.block) this.host.releaseScratch(a.block);
        if (b.block) this.host.releaseScratch(b.block);
      }
    }
  }

  private small(p: GemmParams): void {
    this.alpha[0] = p.alpha;
    // A warp per output: launchLinear sizes the grid in threads.
    this.host.launchLinear(this.host.kernel('gemm_small'), 32 * p.m * p.n * p.batch, [
      this.host.addressOf(p.a) + 4 * p.aOffset, this.host.addressOf(p.b) + 4 * p.bOffset, this.cAddress(p),
      p.m, p.n, p.k, p.lda, p.ldb, p.ldc, p.strideA, p.strideB, p.strideC, p.batch, p.transA ? 1 : 0, p.transB ? 1 : 0, p.alpha, p.beta,
    ]);
  }

  private scaleC(p: GemmParams): void {
    this.host.launchLinear(this.host.kernel('scale_matrices'), p.m * p.n * p.batch, [
      this.cAddress(p), p.m, p.n, p.ldc, p.strideC, p.batch, p.beta,
    ]);
    this.counts.scale++;
  }

  /**
   * cuBLASLt FP8 needs the "TN" layout (A transposed, B not, column-major) and 16-byte aligned
   * leading dimensions, so both operands are packed to k-contiguous rows: the Lt A operand is
   * op(B)ᵀ as n×k rows, the Lt B operand op(A) as m×k rows. Returns false (and records why)
   * when this product cannot run there.
   */
  private fp8(p: GemmParams): boolean {
    const support = this.fp8Support();
    if (!support.supported) return this.fallback(`native FP8 GEMM unavailable: ${support.reason}`);
    if (p.k % 16 !== 0) return this.fallback(`native FP8 GEMM needs k divisible by 16 (k=${p.k})`);
    if (p.ldc % 4 !== 0 || p.cOffset % 4 !== 0 || p.strideC % 4 !== 0) {
      return this.fallback('native FP8 GEMM needs a 16-byte aligned C (ldc, offset and batch stride divisible by 4)');
    }
    const plan = this.ltPlan(p);
    if (typeof plan === 'string') return this.fallback(plan);
    const lt = this.lt!;
    const a = this.operand(p, 'a');
    const b = this.operand(p, 'b');
    // Lt operand A = op(B)ᵀ (n×k rows); element (j, q) is op(B)[q][j].
    const ltA = this.packFp8(b.address, p.n, p.k, p.transB ? p.ldb : 1, p.transB ? 1 : p.ldb, b.stride, p.batch);
    // Lt operand B = op(A) (m×k rows); element (i, q) is op(A)[i][q].
    const ltB = this.packFp8(a.address, p.m, p.k, p.transA ? 1 : p.lda, p.transA ? p.lda : 1, a.stride, p.batch);
    try {
      this.alpha[0] = p.alpha;
      this.beta[0] = p.beta;
      const c = this.cAddress(p);
      const [aLayout, bLayout, cLayout] = plan.layouts;
      const code = lt.api.cublasLtMatmul(
        lt.handle, plan.desc, this.alpha, ltA.address, aLayout, ltB.address, bLayout, this.beta, c, cLayout, c, cLayout,
        plan.algo, this.workspace.address, this.workspace.bytes, this.host.stream,
      );
      checkCublas('cublasLtMatmul (FP8)', code);
    } finally {
      this.host.releaseScratch(ltA);
      this.host.releaseScratch(ltB);
    }
    return true;
  }

  private packFp8(address: number, rows: number, cols: number, rowStride: number, colStride: number, stride: number, batch: number): Block {
    const batches = stride === 0 ? 1 : batch;
    const block = this.host.allocateScratch(rows * cols * batches);
    this.host.launchLinear(this.host.kernel('pack_e4m3'), rows * cols * batches, [address, block.address, rows, cols, rowStride, colStride, stride, batches]);
    return block;
  }

  private fallback(reason: string): false {
    this.fallbacks.add(reason);
    return false;
  }

  private ltPlan(p: GemmParams): LtPlan | string {
    const key = [p.m, p.n, p.k, p.batch, p.strideA === 0, p.strideB === 0, p.ldc, p.strideC].join(',');
    const cached = this.ltPlans.get(key);
    if (cached !== undefined) return cached;
    const plan = this.createLtPlan(p);
    this.ltPlans.set(key, plan);
    return plan;
  }

  private createLtPlan(p: GemmParams): LtPlan | string {
    const { api, handle } = this.lt!;
    const out = new BigUint64Array(1);
    checkCublas('cublasLtMatmulDescCreate', api.cublasLtMatmulDescCreate(out, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const desc = out[0]!;
    const setDesc = (attribute: number, value: number): void => {
      checkCublas('cublasLtMatmulDescSetAttribute', api.cublasLtMatmulDescSetAttribute(desc, attribute, new Int32Array([value]), 4));
    };
    setDesc(CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T);
    setDesc(CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
    const layout = (type: number, rows: number, cols: number, ld: number, batchStride: number): Handle => {
      checkCublas('cublasLtMatrixLayoutCreate', api.cublasLtMatrixLayoutCreate(out, type, rows, cols, ld));
      const handleOut = out[0]!;
      if (p.batch > 1) {
        checkCublas('cublasLtMatrixLayoutSetAttribute', api.cublasLtMatrixLayoutSetAttribute(handleOut, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, new Int32Array([p.batch]), 4));
        checkCublas(
          'cublasLtMatrixLayoutSetAttribute',
          api.cublasLtMatrixLayoutSetAttribute(handleOut, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, new BigInt64Array([BigInt(batchStride)]), 8),
        );
      }
      return handleOut;
    };
    const aLayout = layout(CUDA_R_8F_E4M3, p.k, p.n, p.k, p.strideB === 0 ? 0 : p.n * p.k);
    const bLayout = layout(CUDA_R_8F_E4M3, p.k, p.m, p.k, p.strideA === 0 ? 0 : p.m * p.k);
    const cLayout = layout(CUDA_R_32F, p.n, p.m, p.ldc, p.strideC);
    checkCublas('cublasLtMatmulPreferenceCreate', api.cublasLtMatmulPreferenceCreate(out));
    const preference = out[0]!;
    checkCublas(
      'cublasLtMatmulPreferenceSetAttribute',
      api.cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, new BigUint64Array([BigInt(this.workspace.bytes)]), 8),
    );
    const algo = koffi.alloc('uint8_t', HEURISTIC_RESULT_BYTES) as bigint;
    const returned = new Int32Array(1);
    const code = api.cublasLtMatmulAlgoGetHeuristic(handle, desc, aLayout, bLayout, cLayout, cLayout, preference, 1, algo, returned);
    api.cublasLtMatmulPreferenceDestroy(preference);
    if (code !== 0 || returned[0] === 0) {
      api.cublasLtMatrixLayoutDestroy(aLayout);
      api.cublasLtMatrixLayoutDestroy(bLayout);
      api.cublasLtMatrixLayoutDestroy(cLayout);
      api.cublasLtMatmulDescDestroy(desc);
      koffi.free(algo);
      return `cuBLASLt has no FP8 kernel for m=${p.m} n=${p.n} k=${p.k} batch=${p.batch} (${code !== 0 ? cublasStatusName(code) : 'no algorithm'})`;
    }
    return { desc, layouts: [aLayout, bLayout, cLayout], algo };
  }
}

/** k-chunks of a grouped product: 4 (or 2) when each stays at least GROUP_MIN_CHUNK deep. */
export function groupChunks(k: number): number {
  return [4, 2].find((c) => k % c === 0 && k / c >= GROUP_MIN_CHUNK) ?? 1;
}
export const GROUP_MIN_CHUNK = 256;

/**
 * Groups of products that may run as one batched call (same flags, sizes, leading dimensions,
 * factors and format), in first-appearance order; products `groupable` rejects stay alone.
 */
export function groupByShape(params: readonly GemmParams[], groupable: (p: GemmParams) => boolean): GemmParams[][] {
  const groups = new Map<string, GemmParams[]>();
  const out: GemmParams[][] = [];
  for (const p of params) {
    if (!groupable(p)) {
      out.push([p]);
      continue;
    }
    const key = [p.transA, p.transB, p.m, p.n, p.k, p.lda, p.ldb, p.ldc, p.alpha, p.beta, p.inputFormat ?? 'fp32'].join(',');
    const group = groups.get(key);
    if (group) group.push(p);
    else {
      const made = [p];
      groups.set(key, made);
      out.push(made);
    }
  }
  return out;
}

function checkCount(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`gemm: ${name} must be a non-negative integer, got ${value}`);
}

/** Same checks as the CPU twin: out-of-range views would read or write past the allocation. */
function validate(p: GemmParams): void {
  checkOperandTypes(p);
  for (const [name, value] of [['m', p.m], ['n', p.n], ['k', p.k], ['batch', p.batch], ['strideA', p.strideA], ['strideB', p.strideB], ['strideC', p.strideC]] as const) {
    checkCount(name, value);
  }
  if (p.m === 0 || p.n === 0 || p.batch === 0) return;
  checkView('A', p.a, p.aOffset, p.lda, p.transA ? p.k : p.m, p.transA ? p.m : p.k, p.batch, p.strideA);
  checkView('B', p.b, p.bOffset, p.ldb, p.transB ? p.n : p.k, p.transB ? p.k : p.n, p.batch, p.strideB);
  checkView('C', p.c, p.cOffset, p.ldc, p.m, p.n, p.batch, p.strideC);
  for (const [name, value] of [['m', p.m], ['n', p.n], ['k', p.k], ['lda', p.lda], ['ldb', p.ldb], ['ldc', p.ldc], ['batch', p.batch]] as const) {
    if (value > 0x7fffffff) throw new RangeError(`gemm: ${name}=${value} does not fit cuBLAS's 32-bit int`);
  }
}

function checkView(name: string, storage: Storage, offset: number, ld: number, rows: number, cols: number, batch: number, stride: number): void {
  const lower = name.toLowerCase();
  checkCount(`${name} offset`, offset);
  checkCount(`ld${lower}`, ld);
  if (ld < Math.max(1, cols)) throw new RangeError(`gemm: ld${lower}=${ld} is smaller than the ${cols} columns of ${name}`);
  if (rows === 0 || cols === 0) return;
  const last = offset + (batch - 1) * stride + (rows - 1) * ld + cols - 1;
  if (last >= storage.size) {
    throw new RangeError(`gemm: ${name} view (${rows}x${cols}, offset ${offset}, ld ${ld}, batch ${batch}, stride ${stride}) reaches element ${last} of a storage of ${storage.size}`);
  }
}
