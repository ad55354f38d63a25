import type { Format16, GemmParams } from '../../backend/backend.ts';
import { deferLeafProduct, gradientDType, record, SUNK, type GradSink } from '../autograd.ts';
import { formatShape, sameShape, type Tensor } from '../tensor.ts';
import { alias, empty } from './creation.ts';

/**
 * Leaf-gradient products of at most this many multiply-adds are handed to autograd to run at the
 * end of the backward pass (deferLeafProduct), where a backend may batch those of one shape; larger
 * ones fill the GPU alone, and deferring them would only keep their operands alive longer.
 */
export const DEFER_MAX_MACS = 2 ** 28;

export interface MatmulOptions {
  /** Use a stored as [..., k, m] (resp. b as [..., n, k]). */
  transA?: boolean;
  transB?: boolean;
  /** Forward output multiplier (folded into the GEMM's alpha). */
  scale?: number;
  /** Backward multipliers of each operand's gradient; default: the true gradient (= scale). */
  gradScaleA?: number;
  gradScaleB?: number;
  /** Operand precision the values already have, so a backend may use low-precision GEMMs. */
  inputFormat?: GemmParams['inputFormat'];
  /** Precision of the incoming gradient (e.g. e5m2 in FP8 training) for the backward GEMMs. */
  gradFormat?: GemmParams['inputFormat'];
  /** FP16/BF16: operands (and, in the backward, the incoming gradient) may be off the grid; see GemmParams.roundInputs. */
  roundInputs?: boolean;
  /**
   * b's values as the products read them: a 16-bit copy of b in inputFormat's format (T.copy16),
   * which the forward product and the backward's input-gradient product read in place of b, so
   * that neither packs b. b itself still receives the gradient.
   */
  readB?: Tensor;
  /**
   * The output is 16-bit storage of this format (fp16 or bf16, the product's inputFormat): the
   * product's float32 result rounded to it (nearest-even), for outputs that every reader reads
   * rounded to that format anyway.
   */
  outputFormat?: Format16;
  /**
   * With roundInputs and a 16-bit gradFormat: the gradient arriving at the output may come in
   * 16-bit storage of gradFormat (the backward products read it as stored), and the operands'
   * gradients are written in it where their producers allow the same (autograd.gradientDType).
   */
  gradStorage16?: boolean;
}

interface Layout {
  batchShape: number[];
  batch: number;
  m: number;
  n: number;
  k: number;
  aBatched: boolean;
  bBatched: boolean;
}

function layout(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Layout {
  if (a.rank < 2 || b.rank < 2) throw new Error(`matmul: operands need rank ≥ 2, got ${a.describe()} and ${b.describe()}`);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const aBatched = aBatch.length > 0;
  const bBatched = bBatch.length > 0;
  const sameBatch = aBatch.length === bBatch.length && aBatch.every((d, i) => d === bBatch[i]);
  if (k !== kb || (aBatched && bBatched && !sameBatch)) {
    throw new Error(
      `matmul: shapes ${formatShape(a.shape)}${transA ? 'ᵀ' : ''} and ${formatShape(b.shape)}${transB ? 'ᵀ' : ''} do not multiply`,
    );
  }
  const batchShape = aBatched ? aBatch : bBatch;
  return { batchShape, batch: batchShape.reduce((p, d) => p * d, 1), m, n, k, aBatched, bBatched };
}

type GemmShape = { transA: boolean; transB: boolean; m: number; n: number; k: number; batch: number; strideA: number; strideB: number; alpha: number; beta?: number; inputFormat?: GemmParams['inputFormat']; roundInputs?: boolean };

/** C = alpha·op(A)·op(B) for row-major operands held whole in tensors. */
function gemm(a: Tensor, b: Tensor, out: Tensor, g: GemmShape): void {
  a.backend.gemm(gemmParams(a, b, out, g));
}

function gemmParams(a: Tensor, b: Tensor, out: Tensor, g: GemmShape): GemmParams {
  return {
    transA: g.transA,
    transB: g.transB,
    m: g.m,
    n: g.n,
    k: g.k,
    alpha: g.alpha,
    a: a.storage,
    aOffset: 0,
    lda: g.transA ? g.m : g.k,
    b: b.storage,
    bOffset: 0,
    ldb: g.transB ? g.k : g.n,
    beta: g.beta ?? 0,
    c: out.storage,
    cOffset: 0,
    ldc: g.n,
    batch: g.batch,
    strideA: g.strideA,
    strideB: g.strideB,
    strideC: g.m * g.n,
    inputFormat: g.inputFormat,
    roundInputs: g.roundInputs,
  };
}

/**
 * Batched matrix product op(a)·op(b)·scale over the last two axes. Leading (batch) axes must match,
 * or one operand may have none (it is shared across the batch, e.g. a weight).
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const { transA = false, transB = false, scale = 1 } = options;
  const gradScaleA = options.gradScaleA ?? scale;
  const gradScaleB = options.gradScaleB ?? scale;
  if (a.backend !== b.backend) throw new Error('matmul: operands live on different backends');
  const L = layout(a, b, transA, transB);
  const { m, n, k, batch } = L;
  const gradFormat = options.gradFormat ?? options.inputFormat;
  const bRead = readOperandB(b, options.readB);
  for (const [name, t] of [['a', a], ['b', bRead]] as const) checkStoredFormat(name, t, options.inputFormat, gradFormat);
  if (options.outputFormat && options.outputFormat !== options.inputFormat) {
    throw new Error(`matmul: a ${options.outputFormat} output needs a ${options.outputFormat} product, got ${options.inputFormat ?? 'fp32'}`);
  }
  const out = empty([...L.batchShape, m, n], options.outputFormat ?? 'f32', a.backend);
  gemm(a, bRead, out, {
    transA,
    transB,
    m,
    n,
    k,
    batch,
    strideA: L.aBatched ? m * k : 0,
    strideB: L.bBatched ? k * n : 0,
    alpha: scale,
    inputFormat: options.inputFormat,
    roundInputs: options.roundInputs,
  });
  const roundInputs = options.roundInputs;
  // The backward products round the gradient arriving here as they read it.
  const grad16 = options.gradStorage16 === true && roundInputs === true && (gradFormat === 'bf16' || gradFormat === 'fp16');
  if (grad16) out.gradRoundedTo = gradFormat;
  return record(out, [a, b], (g, sinks) => {
    // A gradient goes straight into its sink when there is one (beta 1 adds, beta 0 overwrites).
    // One written whole by a single product may be 16-bit where its reader rounds it anyway.
    const target = (x: Tensor, sink: GradSink | null | undefined, wholeProduct = false): { t: Tensor; beta: number } =>
      sink ? { t: sink.target, beta: sink.accumulate ? 1 : 0 } : { t: empty(x.shape, grad16 && wholeProduct && gradFormat === gradientDType(x) ? gradFormat : 'f32', x.backend), beta: 0 };
    const zeroed = (x: Tensor, sink: GradSink | null | undefined): Tensor => {
      const { t, beta } = target(x, sink);
      if (beta === 0) x.backend.fill(t.storage, 0, t.size, 0);
      return t;
    };
    let gradA: Tensor | null = null;
    let gradB: Tensor | null = null;
    // The input and weight gradients are independent products: queued together, a backend may
    // run them side by side.
    const independent: GemmParams[] = [];
    const queue = (x: Tensor, y: Tensor, target: Tensor, shape: GemmShape, sink?: GradSink | null) => {
      const params = gemmParams(x, y, target, shape);
      // FP32 only: a 16-bit product shares the packed incoming gradient with its neighbour.
      const fp32 = (shape.inputFormat ?? 'fp32') === 'fp32';
      const leaf = sink?.leaf ? (sink === sinks[0] ? a : b) : null;
      if (leaf && fp32 && shape.batch === 1 && shape.m * shape.n * shape.k <= DEFER_MAX_MACS && deferLeafProduct(leaf, params, [alias(x), alias(y)])) return;
      independent.push(params);
    };
    if (a.requiresGrad) {
      // stored-A gradient: [m,k] = g·op(B)ᵀ, or for transA [k,m] = op(B)·gᵀ
      const shared = !L.aBatched && L.bBatched;
      if (shared && !transA && !transB) {
        // Σ_batch g_b·B_bᵀ cannot fold the batch into one GEMM; accumulate with beta = 1.
        gradA = zeroed(a, sinks[0]);
        for (let i = 0; i < batch; i++) accumulateGemm(g, bRead, gradA, i * m * n, i * k * n, false, true, m, k, n, n, n, k, gradScaleA, gradFormat, roundInputs);
      } else if (shared) {
        gradA = zeroed(a, sinks[0]);
        for (let i = 0; i < batch; i++) {
          if (!transA) accumulateGemm(g, bRead, gradA, i * m * n, i * n * k, false, false, m, k, n, n, k, k, gradScaleA, gradFormat, roundInputs);
          else if (!transB) accumulateGemm(bRead, g, gradA, i * k * n, i * m * n, false, true, k, m, n, n, n, m, gradScaleA, gradFormat, roundInputs);
          else accumulateGemm(bRead, g, gradA, i * n * k, i * m * n, true, true, k, m, n, k, n, m, gradScaleA, gradFormat, roundInputs);
        }
      } else {
        const { t, beta } = target(a, sinks[0], true);
        gradA = t;
        const strideG = m * n;
        const strideB = L.bBatched ? k * n : 0;
        if (!transA) queue(g, bRead, gradA, { transA: false, transB: !transB, m, n: k, k: n, batch, strideA: strideG, strideB, alpha: gradScaleA, beta, inputFormat: gradFormat, roundInputs }, sinks[0]);
        else queue(bRead, g, gradA, { transA: transB, transB: true, m: k, n: m, k: n, batch, strideA: strideB, strideB: strideG, alpha: gradScaleA, beta, inputFormat: gradFormat, roundInputs }, sinks[0]);
      }
    }
    if (b.requiresGrad) {
      const shared = L.aBatched && !L.bBatched;
      if (shared && !transA) {
        // Fold the batch into the GEMM: A is [batch·m, k] contiguous, g is [batch·m, n].
        const { t, beta } = target(b, sinks[1], true);
        gradB = t;
        if (!transB) queue(a, g, gradB, { transA: true, transB: false, m: k, n, k: batch * m, batch: 1, strideA: 0, strideB: 0, alpha: gradScaleB, beta, inputFormat: gradFormat, roundInputs }, sinks[1]);
        else queue(g, a, gradB, { transA: true, transB: false, m: n, n: k, k: batch * m, batch: 1, strideA: 0, strideB: 0, alpha: gradScaleB, beta, inputFormat: gradFormat, roundInputs }, sinks[1]);
      } else if (shared) {
        gradB = zeroed(b, sinks[1]);
        for (let i = 0; i < batch; i++) {
          if (!transB) accumulateGemm(a, g, gradB, i * k * m, i * m * n, false, false, k, n, m, m, n, n, gradScaleB, gradFormat, roundInputs);
          else accumulateGemm(g, a, gradB, i * m * n, i * k * m, true, true, n, k, m, n, m, k, gradScaleB, gradFormat, roundInputs);
        }
      } else {
        const { t, beta } = target(b, sinks[1], true);
        gradB = t;
        const strideA = L.aBatched ? m * k : 0;
        const strideG = m * n;
        if (!transB) queue(a, g, gradB, { transA: !transA, transB: false, m: k, n, k: m, batch, strideA, strideB: strideG, alpha: gradScaleB, beta, inputFormat: gradFormat, roundInputs }, sinks[1]);
        else queue(g, a, gradB, { transA: true, transB: transA, m: n, n: k, k: m, batch, strideA: strideG, strideB: strideA, alpha: gradScaleB, beta, inputFormat: gradFormat, roundInputs }, sinks[1]);
      }
    }
    if (independent.length > 0) g.backend.gemms(independent);
    return [gradA && sinks[0] ? SUNK : gradA, gradB && sinks[1] ? SUNK : gradB];
  });
}

/** b, or its 16-bit stand-in (MatmulOptions.readB) once checked to hold the same shape. */
function readOperandB(b: Tensor, readB: Tensor | undefined): Tensor {
  if (!readB) return b;
  if (readB.backend !== b.backend || !sameShape(readB.shape, b.shape)) throw new Error(`matmul: readB ${readB.describe()} does not stand in for ${b.describe()}`);
  if (readB.dtype === 'f32' || readB.dtype === 'i32') throw new Error(`matmul: readB ${readB.describe()} must be 16-bit storage, got ${readB.dtype}`);
  return readB;
}

/** A 16-bit operand needs products of its own format, forward and backward. */
function checkStoredFormat(name: string, t: Tensor, inputFormat: GemmParams['inputFormat'], gradFormat: GemmParams['inputFormat']): void {
  if (t.dtype === 'f32') return;
  if (t.dtype === 'i32') throw new Error(`matmul: ${name} ${t.describe()} is int32`);
  if (inputFormat !== t.dtype || gradFormat !== t.dtype) {
    throw new Error(`matmul: ${name} ${t.describe()} is ${t.dtype} storage, but the products read ${inputFormat ?? 'fp32'} (forward) and ${gradFormat ?? 'fp32'} (backward)`);
  }
}

/** C += alpha·op(A)·op(B) on sub-matrices at the given offsets (single, unbatched GEMM). */
function accumulateGemm(
  a: Tensor,
  b: Tensor,
  c: Tensor,
  aOffset: number,
  bOffset: number,
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  lda: number,
  ldb: number,
  ldc: number,
  alpha: number,
  inputFormat: GemmParams['inputFormat'],
  roundInputs: boolean | undefined,
): void {
  a.backend.gemm({
    transA, transB, m, n, k, alpha,
    a: a.storage, aOffset, lda,
    b: b.storage, bOffset, ldb,
    beta: 1,
    c: c.storage, cOffset: 0, ldc,
    batch: 1, strideA: 0, strideB: 0, strideC: 0,
    inputFormat, roundInputs,
  });
}
