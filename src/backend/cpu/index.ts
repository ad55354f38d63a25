import { bytesPerElement } from '../backend.ts';
import type {
  AdamWMultiParams,
  AttentionGradParams,
  AttentionParams,
  AdamWParams,
  Backend,
  BinaryKind,
  CrossEntropyGradParams,
  Copy16,
  CrossEntropyParams,
  DType,
  GemmParams,
  StridedGemmParams,
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
  StridedView,
  Format16,
  UnaryKind,
} from '../backend.ts';
import { CpuStorage, dataOf, f32, floats, i32, roundStored } from './storage.ts';
import * as elementwise from './elementwise.ts';
import { reduce } from './reduce.ts';
import * as nn from './nn-kernels.ts';
import * as optim from './optim-kernels.ts';
import * as highway from './highway-kernels.ts';
import * as highwaySequence from './highway-sequence.ts';
import * as fusedAttention from './attention.ts';
import { sgemmBatched } from './gemm.ts';
import { gemmStrided } from './gemm-strided.ts';
import { fillNormal, fillUniform } from '../../tensor/philox.ts';
import { quantiseWithFormat, readRounded } from './quantise.ts';
import { checkOperandTypes, operandRounding } from '../gemm-rules.ts';
import { checkUnaryStorage } from '../unary-rules.ts';
import { copies16Format } from '../copy16-rules.ts';

/** The reference backend: plain TypeScript kernels (and a system BLAS for matmuls when present). */
export class CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  private allocated = 0;
  private peak = 0;
  /** Released buffers by dtype and size, so a steady-state step reuses memory instead of
   * producing garbage; alloc() hands out uninitialised (stale) contents, like a device allocator. */
  private readonly pool = new Map<string, CpuStorage[]>();
  private pooledBytes = 0;

  alloc(size: number, dtype: DType): Storage {
    const key = `${dtype}:${size}`;
    const cached = this.pool.get(key)?.pop();
    const bytes = size * bytesPerElement(dtype);
    this.allocated += bytes;
    this.peak = Math.max(this.peak, this.allocated);
    if (cached) {
      this.pooledBytes -= bytes;
      return cached;
    }
    return new CpuStorage(size, dtype);
  }

  release(storage: Storage): void {
    if (!(storage instanceof CpuStorage)) throw new Error('CpuBackend.release: foreign storage');
    const bytes = storage.size * bytesPerElement(storage.dtype);
    this.allocated -= bytes;
    const key = `${storage.dtype}:${storage.size}`;
    let list = this.pool.get(key);
    if (!list) this.pool.set(key, (list = []));
    list.push(storage);
    this.pooledBytes += bytes;
  }

  write(storage: Storage, data: Float32Array | Int32Array, offset = 0): void {
    dataOf(storage).set(data, offset);
    roundStored(storage, offset, offset + data.length);
  }

  read(storage: Storage): Float32Array | Int32Array {
    return dataOf(storage).slice();
  }

  memoryStats(): { allocatedBytes: number; peakBytes: number; reservedBytes: number } {
    return { allocatedBytes: this.allocated, peakBytes: this.peak, reservedBytes: this.allocated + this.pooledBytes };
  }

  resetPeakMemory(): void {
    this.peak = this.allocated;
  }

  fill(out: Storage, offset: number, n: number, value: number): void {
    dataOf(out).fill(value, offset, offset + n);
    roundStored(out, offset, offset + n);
  }

  unary(kind: UnaryKind, x: Storage, out: Storage, n: number, inScale: number, outScale: number, readFormat?: Format16): void {
    checkUnaryStorage(`unary ${kind}`, kind, readFormat, [['x', x]], out);
    elementwise.unary(kind, readRounded(floats(x), readFormat, n), floats(out), n, inScale, outScale);
    roundStored(out, 0, n);
  }

  unaryGrad(kind: UnaryKind, x: Storage, gradOut: Storage, gradX: Storage, n: number, inScale: number, gradScale: number, readFormat?: Format16): void {
    checkUnaryStorage(`unaryGrad ${kind}`, kind, readFormat, [['x', x], ['gradOut', gradOut], ['gradX', gradX]]);
    elementwise.unaryGrad(kind, readRounded(floats(x), readFormat, n), readRounded(floats(gradOut), readFormat, n), floats(gradX), n, inScale, gradScale);
    roundStored(gradX, 0, n);
  }

  binary(kind: BinaryKind, a: StridedView, b: StridedView, out: Storage, shape: readonly number[], scaleA: number, scaleB: number): void {
    elementwise.binary(kind, a, b, f32(out), shape, scaleA, scaleB);
  }

  where(cond: StridedView, a: StridedView, b: StridedView, out: Storage, shape: readonly number[]): void {
    elementwise.where(cond, a, b, f32(out), shape);
  }

  copy(src: StridedView, dst: StridedView, shape: readonly number[], scale: number, accumulate: boolean): void {
    elementwise.copy(src, dst, shape, scale, accumulate);
  }

  reduce(kind: ReduceKind, x: Storage, xShape: readonly number[], out: Storage, outShape: readonly number[], scale: number): void {
    reduce(kind, f32(x), xShape, f32(out), outShape, scale);
  }

  gemms(params: readonly GemmParams[]): void {
    for (const p of params) this.gemm(p);
  }

  gemmStrided(params: StridedGemmParams): void {
    gemmStrided(params);
  }

  gemmsStrided(params: readonly StridedGemmParams[]): void {
    for (const p of params) gemmStrided(p);
  }

  gemm(p: GemmParams): void {
    // roundInputs: the product of the operands rounded to the format (copies, rounded).
    checkOperandTypes(p);
    const rounding = operandRounding(p);
    const operand = (storage: Storage) => (storage.dtype === 'f32' ? readRounded(f32(storage), rounding) : floats(storage));
    sgemmBatched({
      transA: p.transA,
      transB: p.transB,
      m: p.m,
      n: p.n,
      k: p.k,
      alpha: p.alpha,
      a: operand(p.a),
      aOffset: p.aOffset,
      lda: p.lda,
      b: operand(p.b),
      bOffset: p.bOffset,
      ldb: p.ldb,
      beta: p.beta,
      c: floats(p.c),
      cOffset: p.cOffset,
      ldc: p.ldc,
      batch: p.batch,
      strideA: p.strideA,
      strideB: p.strideB,
      strideC: p.strideC,
    });
    // A 16-bit C holds the results rounded (and, outside the window, values already on its grid).
    roundStored(p.c);
  }

  softmax(x: Storage, out: Storage, rows: number, cols: number, inScale: number, outScale: number, log: boolean, causalRows: number): void {
    nn.softmax(f32(x), f32(out), rows, cols, inScale, outScale, log, causalRows);
  }

  softmaxGrad(y: Storage, gradOut: Storage, gradX: Storage, rows: number, cols: number, gradScale: number, log: boolean): void {
    nn.softmaxGrad(f32(y), f32(gradOut), f32(gradX), rows, cols, gradScale, log);
  }

  layerNorm(params: LayerNormParams): void {
    nn.layerNorm(params);
  }

  layerNormGrad(params: LayerNormGradParams): void {
    nn.layerNormGrad(params);
  }

  gather(table: Storage, ids: Storage, out: Storage, count: number, dim: number): void {
    nn.gather(f32(table), i32(ids), f32(out), count, dim, table.size / dim);
  }

  scatterAdd(gradOut: Storage, ids: Storage, gradTable: Storage, count: number, dim: number, scale: number): void {
    nn.scatterAdd(f32(gradOut), i32(ids), f32(gradTable), count, dim, scale);
  }

  crossEntropy(params: CrossEntropyParams): void {
    nn.crossEntropy(params);
  }

  crossEntropyGrad(params: CrossEntropyGradParams): void {
    nn.crossEntropyGrad(params);
  }

  random(out: Storage, n: number, distribution: 'uniform' | 'normal', seed: number, stream: number, epoch: Storage | null, a: number, b: number): void {
    const target = f32(out).subarray(0, n);
    const e = epoch ? i32(epoch)[0] >>> 0 : 0;
    if (distribution === 'normal') fillNormal(target, seed, stream, 0, a, b, e);
    else {
      fillUniform(target, seed, stream, 0, e);
      if (a !== 0 || b !== 1) for (let i = 0; i < n; i++) target[i] = a + (b - a) * target[i];
    }
  }

  quantise(x: Storage, out: Storage, n: number, format: QuantiseFormat, options: QuantiseOptions, epoch: Storage | null): void {
    const e = epoch ? i32(epoch)[0] >>> 0 : 0;
    quantiseWithFormat(f32(x).subarray(0, n), f32(out).subarray(0, n), format, options, e);
  }

  quantiseMany(tensors: readonly QuantiseManyTensor[], format: QuantiseFormat, options: Omit<QuantiseOptions, 'stream'>, epoch: Storage | null): void {
    for (const t of tensors) this.quantise(t.storage, t.storage, t.n, format, { ...options, stream: t.stream }, epoch);
  }

  copies16(pairs: readonly Copy16[]): void {
    copies16Format(pairs);
    for (const { src, dst, n } of pairs) {
      floats(dst).set(f32(src).subarray(0, n));
      roundStored(dst, 0, n);
    }
  }

  increment(counter: Storage): void {
    i32(counter)[0] += 1;
  }

  adamw(params: AdamWParams): void {
    optim.adamw(params);
  }

  adamwMulti(params: AdamWMultiParams): void {
    optim.adamwMulti(params);
  }

  sgdm(params: SgdmParams): void {
    optim.sgdm(params);
  }

  lambUpdate(params: LambUpdateParams): void {
    optim.lambUpdate(params);
  }

  lambApply(params: LambApplyParams): void {
    optim.lambApply(params);
  }

  highwayStep(params: HighwayStepParams): void {
    highway.highwayStep(params);
  }

  highwayStepGrad(params: HighwayStepGradParams): void {
    highway.highwayStepGrad(params);
  }

  highwaySequence(params: HighwaySequenceParams): void {
    highwaySequence.highwaySequence(params);
  }

  highwaySequenceGrad(params: HighwaySequenceGradParams): void {
    highwaySequence.highwaySequenceGrad(params);
  }

  attention(params: AttentionParams): void {
    fusedAttention.attention(params);
  }

  attentionGrad(params: AttentionGradParams): void {
    fusedAttention.attentionGrad(params);
  }

  synchronize(): void {}
}
