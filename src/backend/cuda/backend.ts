/**
 * The CUDA backend: every kernel of the Backend interface on one stream of device 0, device
 * memory from a caching allocator, GEMMs on cuBLAS/cuBLASLt, and CUDA-graph capture of a step.
 */
import type {
  AdamWMultiParams,
  AdamWParams,
  AttentionGradParams,
  AttentionParams,
  Backend,
  BinaryKind,
  CrossEntropyGradParams,
  Copy16,
  CrossEntropyParams,
  DeviceFence,
  DType,
  GemmParams,
  HighwayStepGradParams,
  HighwaySequenceGradParams,
  HighwaySequenceParams,
  HighwayStepParams,
  LambApplyParams,
  LambUpdateParams,
  LayerNormGradParams,
  LayerNormParams,
  QuantiseFormat,
  QuantiseManyTensor,
  QuantiseOptions,
  ReduceKind,
  SgdmParams,
  Storage,
  StridedGemmParams,
  StridedMatrix,
  StridedView,
  Format16,
  UnaryKind,
} from '../backend.ts';
import { bytesPerElement, isFormat16 } from '../backend.ts';
import { decode16, encode16 } from './codes16.ts';
import { checkStridedGemm } from '../strided-gemm-rules.ts';
import { checkDriver, CU_STREAM_CAPTURE_MODE_GLOBAL, type Handle } from './driver-api.ts';
import * as elementwise from './elementwise-ops.ts';
import { CudaGemm } from './gemm.ts';
import { CudaGraph } from './graph.ts';
import * as highway from './highway-ops.ts';
import * as fusedAttention from './attention-ops.ts';
import * as stridedGemm from './gemm-strided-ops.ts';
import * as nn from './nn-ops.ts';
import * as optim from './optim-ops.ts';
import { DeviceTables } from './device-tables.ts';
import * as randomOps from './random-ops.ts';
import { reduce } from './reduce-op.ts';
import { asCuda, type CudaRuntime } from './runtime.ts';
import type { Block } from './allocator.ts';
import { checkCount } from './strided.ts';

/** The second stream of CudaBackend.gemms: its GEMM engine is bound to it, with its own workspace. */
export interface SideStream {
  readonly stream: Handle;
  readonly gemm: CudaGemm;
  readonly fork: Handle;
  readonly join: Handle;
  /** its cuBLAS handle and workspace (for teardown) */
  readonly handle: Handle;
  readonly workspace: Block;
}

/** Products smaller than this (multiply-adds) finish before a second stream pays off. */
const SIDE_BY_SIDE_MIN_MACS = 2 ** 22;

function runsSideBySide(p: GemmParams): boolean {
  const plain = (p.inputFormat === undefined || p.inputFormat === 'fp32') && p.k > 0 && p.alpha !== 0 && p.m > 0 && p.n > 0 && p.batch > 0;
  return plain && p.m * p.n * p.k * p.batch >= SIDE_BY_SIDE_MIN_MACS;
}

/** The one batch stride that walks both batch levels of an operand, or null when none does. */
function mergedStride(s: StridedMatrix, batch: readonly [number, number]): number | null {
  if (batch[1] === 1) return s.batchStrides[0];
  if (batch[0] === 1 || s.batchStrides[0] === batch[1] * s.batchStrides[1]) return s.batchStrides[1];
  return null;
}

/** A gemmStrided product as one cuBLAS-style strided batch, where its layout allows. */
function asBatchedGemm(p: StridedGemmParams): GemmParams | null {
  if (p.causal !== 'none') return null;
  const [strideA, strideB, strideC] = [mergedStride(p.a, p.batch), mergedStride(p.b, p.batch), mergedStride(p.c, p.batch)];
  if (strideA === null || strideB === null || strideC === null) return null;
  return {
    transA: p.transA, transB: p.transB, m: p.m, n: p.n, k: p.k, alpha: p.alpha, beta: p.beta,
    a: p.a.storage, aOffset: p.a.offset, lda: p.a.ld,
    b: p.b.storage, bOffset: p.b.offset, ldb: p.b.ld,
    c: p.c.storage, cOffset: p.c.offset, ldc: p.c.ld,
    batch: p.batch[0] * p.batch[1], strideA, strideB, strideC,
    inputFormat: p.inputFormat,
  };
}

export class CudaBackend implements Backend {
  readonly name = 'cuda' as const;

  constructor(
    /** The device, stream, allocator and kernels (exposed for tests and the doctor). */
    readonly runtime: CudaRuntime,
    readonly gemmEngine: CudaGemm,
    /** A second stream with its own cuBLAS handle, for running independent GEMMs side by side. */
    private readonly side: SideStream | null = null,
    /** Destroys the handles made for this backend (create.ts); null for backends built by hand. */
    private readonly teardown: (() => void) | null = null,
  ) {}

  private destroyed = false;

  /**
   * Waits for this backend's queued work, then gives back its cached device memory, cuBLAS
   * handles and stream. Device memory still held by live tensors stays allocated; release them
   * first. The backend cannot be used afterwards.
   */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.runtime.synchronize();
    if (this.side) checkDriver(this.runtime.api, 'cuStreamSynchronize', this.runtime.api.cuStreamSynchronize(this.side.stream));
    this.teardown?.();
    this.runtime.destroy();
  }

  /** A marker of the work queued so far on this backend's stream (see Backend.fence). */
  fence(): DeviceFence {
    return this.runtime.fence();
  }

  alloc(size: number, dtype: DType): Storage {
    return this.runtime.alloc(size, dtype);
  }

  release(storage: Storage): void {
    this.runtime.release(storage);
  }

  write(storage: Storage, data: Float32Array | Int32Array, offset = 0): void {
    const target = asCuda(storage, 'write');
    checkCount('write', 'storage', storage, data.length, offset);
    if (this.runtime.allocator.isCapturing) throw new Error('write: host-to-device copies cannot be captured in a CUDA graph; write before capturing');
    if (data.length === 0) return;
    // Typed-array assignment semantics, as the CPU twin's set(): values convert to the storage's type.
    const values = isFormat16(storage.dtype)
      ? encode16(data, storage.dtype)
      : storage.dtype === 'f32' ? (data instanceof Float32Array ? data : Float32Array.from(data)) : data instanceof Int32Array ? data : Int32Array.from(data);
    const api = this.runtime.api;
    const bytes = bytesPerElement(storage.dtype);
    checkDriver(api, 'cuMemcpyHtoDAsync', api.cuMemcpyHtoDAsync_v2(target.address + bytes * offset, values, bytes * values.length, this.runtime.stream));
  }

  read(storage: Storage): Float32Array | Int32Array {
    const source = asCuda(storage, 'read');
    if (this.runtime.allocator.isCapturing) throw new Error('read: reading back synchronises, which a CUDA graph capture does not allow');
    const out = isFormat16(storage.dtype) ? new Uint16Array(storage.size) : storage.dtype === 'f32' ? new Float32Array(storage.size) : new Int32Array(storage.size);
    if (out.length > 0) {
      const api = this.runtime.api;
      checkDriver(api, 'cuMemcpyDtoHAsync', api.cuMemcpyDtoHAsync_v2(out, source.address, out.byteLength, this.runtime.stream));
    }
    this.runtime.synchronize();
    return out instanceof Uint16Array ? decode16(out, storage.dtype as Format16) : out;
  }

  memoryStats(): { allocatedBytes: number; peakBytes: number; reservedBytes: number } {
    return this.runtime.memoryStats();
  }

  resetPeakMemory(): void {
    this.runtime.resetPeakMemory();
  }

  /** cuMemAlloc calls so far: constant once a step's memory is cached. */
  deviceAllocationCount(): number {
    return this.runtime.allocator.deviceAllocations;
  }

  /** Gives cached (free) device memory back to the driver. */
  emptyCache(): void {
    this.runtime.allocator.emptyCache();
  }

  fill(out: Storage, offset: number, n: number, value: number): void {
    elementwise.fill(this.runtime, out, offset, n, value);
  }

  unary(kind: UnaryKind, x: Storage, out: Storage, n: number, inScale: number, outScale: number, readFormat?: Format16): void {
    elementwise.unary(this.runtime, kind, x, out, n, inScale, outScale, readFormat);
  }

  unaryGrad(kind: UnaryKind, x: Storage, gradOut: Storage, gradX: Storage, n: number, inScale: number, gradScale: number, readFormat?: Format16): void {
    elementwise.unaryGrad(this.runtime, kind, x, gradOut, gradX, n, inScale, gradScale, readFormat);
  }

  binary(kind: BinaryKind, a: StridedView, b: StridedView, out: Storage, shape: readonly number[], scaleA: number, scaleB: number): void {
    elementwise.binary(this.runtime, kind, a, b, out, shape, scaleA, scaleB);
  }

  where(cond: StridedView, a: StridedView, b: StridedView, out: Storage, shape: readonly number[]): void {
    elementwise.where(this.runtime, cond, a, b, out, shape);
  }

  copy(src: StridedView, dst: StridedView, shape: readonly number[], scale: number, accumulate: boolean): void {
    elementwise.copy(this.runtime, src, dst, shape, scale, accumulate);
  }

  reduce(kind: ReduceKind, x: Storage, xShape: readonly number[], out: Storage, outShape: readonly number[], scale: number): void {
    reduce(this.runtime, kind, x, xShape, out, outShape, scale);
  }

  gemm(params: GemmParams): void {
    this.gemmEngine.run(params);
  }

  /**
   * Two plain FP32 products run on two streams, forked from and joined back into the main one
   * (inside a captured graph this becomes two parallel branches). Anything else runs in order:
   * the low-precision paths pack operands into scratch that the other stream could reuse.
   */
  gemms(params: readonly GemmParams[]): void {
    const side = this.side;
    if (!side || params.length !== 2 || !params.every(runsSideBySide)) {
      this.gemmEngine.runAll(params);
      return;
    }
    const { api, stream } = this.runtime;
    checkDriver(api, 'cuEventRecord', api.cuEventRecord(side.fork, stream));
    checkDriver(api, 'cuStreamWaitEvent', api.cuStreamWaitEvent(side.stream, side.fork, 0));
    try {
      side.gemm.run(params[1]!);
    } finally {
      // Always rejoin: a capture with an unjoined stream cannot end.
      checkDriver(api, 'cuEventRecord', api.cuEventRecord(side.join, side.stream));
      this.gemmEngine.run(params[0]!);
      checkDriver(api, 'cuStreamWaitEvent', api.cuStreamWaitEvent(stream, side.join, 0));
    }
    this.sideBySide++;
  }

  /** gemms() calls that ran on two streams (tests). */
  sideBySide = 0;

  /**
   * Products whose two batch levels merge into one stride (and no causal skipping) go to gemm()
   * and cuBLAS; the rest to gemm_strided, on tensor cores in TF32 for any inputFormat but FP32
   * (the operands are already quantised, and exact in TF32, so only the accumulation differs).
   */
  gemmStrided(params: StridedGemmParams): void {
    this.gemmsStrided([params]);
  }

  /** As gemmStrided, with the kernel's products two to a launch, side by side. */
  gemmsStrided(params: readonly StridedGemmParams[]): void {
    const own: StridedGemmParams[] = [];
    for (const p of params) {
      checkStridedGemm(p);
      const batched = asBatchedGemm(p);
      if (batched) this.gemm(batched);
      else own.push(p);
    }
    if (own.length > 0) stridedGemm.gemmsStrided(this.runtime, own);
  }

  softmax(x: Storage, out: Storage, rows: number, cols: number, inScale: number, outScale: number, log: boolean, causalRows: number): void {
    nn.softmax(this.runtime, x, out, rows, cols, inScale, outScale, log, causalRows);
  }

  softmaxGrad(y: Storage, gradOut: Storage, gradX: Storage, rows: number, cols: number, gradScale: number, log: boolean): void {
    nn.softmaxGrad(this.runtime, y, gradOut, gradX, rows, cols, gradScale, log);
  }

  layerNorm(params: LayerNormParams): void {
    nn.layerNorm(this.runtime, params);
  }

  layerNormGrad(params: LayerNormGradParams): void {
    nn.layerNormGrad(this.runtime, params);
  }

  gather(table: Storage, ids: Storage, out: Storage, count: number, dim: number): void {
    nn.gather(this.runtime, table, ids, out, count, dim);
  }

  scatterAdd(gradOut: Storage, ids: Storage, gradTable: Storage, count: number, dim: number, scale: number): void {
    nn.scatterAdd(this.runtime, gradOut, ids, gradTable, count, dim, scale);
  }

  crossEntropy(params: CrossEntropyParams): void {
    nn.crossEntropy(this.runtime, params);
  }

  crossEntropyGrad(params: CrossEntropyGradParams): void {
    nn.crossEntropyGrad(this.runtime, params);
  }

  random(out: Storage, n: number, distribution: 'uniform' | 'normal', seed: number, stream: number, epoch: Storage | null, a: number, b: number): void {
    randomOps.random(this.runtime, out, n, distribution, seed, stream, epoch, a, b);
  }

  quantise(x: Storage, out: Storage, n: number, format: QuantiseFormat, options: QuantiseOptions, epoch: Storage | null): void {
    randomOps.quantise(this.runtime, x, out, n, format, options, epoch);
  }

  /** Device tables of copies16's sets (a model's weight copies). */
  private readonly copyTables = new DeviceTables('copies16');

  copies16(pairs: readonly Copy16[]): void {
    elementwise.copies16(this.runtime, this.copyTables, pairs);
  }

  /** Device tables of quantiseMany's tensor sets (the optimiser's and the gradients' roundings). */
  private readonly quantiseTables = new DeviceTables('quantiseMany');

  quantiseMany(tensors: readonly QuantiseManyTensor[], format: QuantiseFormat, options: Omit<QuantiseOptions, 'stream'>, epoch: Storage | null): void {
    randomOps.quantiseMany(this.runtime, this.quantiseTables, tensors, format, options, epoch);
  }

  increment(counter: Storage): void {
    randomOps.increment(this.runtime, counter);
  }

  adamw(params: AdamWParams): void {
    optim.adamw(this.runtime, params);
  }

  /** Device tables of adamwMulti's tensor sets (see optim.AdamWTables). */
  private readonly adamwTables = new optim.AdamWTables();

  adamwMulti(params: AdamWMultiParams): void {
    optim.adamwMulti(this.runtime, this.adamwTables, params);
  }

  sgdm(params: SgdmParams): void {
    optim.sgdm(this.runtime, params);
  }

  lambUpdate(params: LambUpdateParams): void {
    optim.lambUpdate(this.runtime, params);
  }

  lambApply(params: LambApplyParams): void {
    optim.lambApply(this.runtime, params);
  }

  highwayStep(params: HighwayStepParams): void {
    highway.highwayStep(this.runtime, params);
  }

  highwayStepGrad(params: HighwayStepGradParams): void {
    highway.highwayStepGrad(this.runtime, params);
  }

  highwaySequence(params: HighwaySequenceParams): void {
    highway.highwaySequence(this.runtime, params);
  }

  highwaySequenceGrad(params: HighwaySequenceGradParams): void {
    highway.highwaySequenceGrad(this.runtime, params);
  }

  attention(params: AttentionParams): void {
    fusedAttention.attention(this.runtime, params);
  }

  attentionGrad(params: AttentionGradParams): void {
    fusedAttention.attentionGrad(this.runtime, params);
  }

  synchronize(): void {
    this.runtime.synchronize();
  }

  /**
   * Records the kernels `fn` queues into a CUDA graph instead of running them. Everything `fn`
   * allocates must come from the allocator's cache (run the same work once eagerly first);
   * nothing may be read back or written from the host inside. Replays reuse the same device
   * addresses, and random kernels read their epoch on the device, so an epoch incremented inside
   * the graph gives fresh numbers on each replay.
   */
  captureGraph(fn: () => void): CudaGraph {
    const { api, stream, allocator } = this.runtime;
    allocator.beginCapture();
    const beginCode = api.cuStreamBeginCapture_v2(stream, CU_STREAM_CAPTURE_MODE_GLOBAL);
    if (beginCode !== 0) {
      allocator.returnBlocks(allocator.endCapture());
      checkDriver(api, 'cuStreamBeginCapture', beginCode);
    }
    let failure: unknown = null;
    try {
      fn();
    } catch (err) {
      failure = err;
    }
    const graphOut = new BigUint64Array(1);
    const endCode = api.cuStreamEndCapture(stream, graphOut);
    const owned = allocator.endCapture();
    const graph = graphOut[0]!;
    if (failure !== null || endCode !== 0) {
      if (graph !== 0n) api.cuGraphDestroy(graph);
      allocator.returnBlocks(owned);
      if (failure !== null) throw failure;
      checkDriver(api, 'cuStreamEndCapture', endCode);
    }
    const execOut = new BigUint64Array(1);
    const instantiateCode = api.cuGraphInstantiateWithFlags(execOut, graph, 0);
    if (instantiateCode !== 0) {
      api.cuGraphDestroy(graph);
      allocator.returnBlocks(owned);
      checkDriver(api, 'cuGraphInstantiate', instantiateCode);
    }
    return new CudaGraph(api, stream, graph, execOut[0]!, owned, (blocks) => allocator.returnBlocks(blocks));
  }
}
