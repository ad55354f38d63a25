/**
 * The kernel interface every backend supplies. Ops (src/tensor/ops) are written once against this
 * interface and never touch storage themselves (design note 1), so the CPU and CUDA backends only
 * differ here. Each kernel has a CPU twin (src/backend/cpu) that is the reference for correctness.
 *
 * Conventions:
 * - Storage is an opaque handle to `size` elements of `dtype`; element offsets and strides are in
 *   elements, never bytes. Tensors handed to kernels are contiguous unless a StridedView says
 *   otherwise.
 * - Scale factors (unit scaling's constants) are kernel parameters, so that `scaled()` costs no
 *   launch of its own on the hot path (design note 4).
 * - Kernels never synchronise with the host; only `read` does (design note 2).
 * - Randomised kernels take a `seed`, a `stream` and an `epoch` counter held in device memory (a
 *   1-element int32 storage), so a captured CUDA graph draws fresh numbers on every replay. The
 *   Philox layout is in src/tensor/philox.ts.
 */

/**
 * Element types of storage. 'bf16' and 'fp16' hold values that are on that format's grid, written
 * by a producer for products that read them in the format (LayerNormParams.out, unary's out,
 * GEMM operands): the CUDA backend keeps them in 2 bytes, the CPU backend as the float32 values.
 * Only the kernels whose documentation says so accept them; the rest require 'f32'.
 */
export type DType = 'f32' | 'i32' | Format16;

/** Bytes an element of this type takes in device memory (what memoryStats counts on every backend). */
export function bytesPerElement(dtype: DType): number {
  return isFormat16(dtype) ? 2 : 4;
}

/** Whether storage of this type holds 16-bit values. */
export function isFormat16(dtype: DType): dtype is Format16 {
  return dtype === 'bf16' || dtype === 'fp16';
}

/** An allocation on a backend. Backends extend this with their own handle. */
export interface Storage {
  readonly size: number;
  readonly dtype: DType;
}

/** A strided window onto a storage: element (i0, i1, …) lives at offset + Σ ik·strides[k]. */
export interface StridedView {
  readonly storage: Storage;
  readonly offset: number;
  readonly strides: readonly number[];
}

export type UnaryKind =
  | 'copy'
  | 'abs'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'reciprocal'
  | 'square'
  | 'tanh'
  | 'sigmoid'
  | 'relu'
  | 'gelu'
  | 'geluTanh'
  | 'sin'
  | 'cos';

/** add: scaleA·a + scaleB·b; mul: outScale·a·b; div: outScale·a/b; max/min: outScale·max(a,b);
 * eq/gt/ge: 1 where the comparison holds else 0. */
export type BinaryKind = 'add' | 'mul' | 'div' | 'max' | 'min' | 'eq' | 'gt' | 'ge';

export type ReduceKind = 'sum' | 'max' | 'min' | 'sumSquares';

/** A number format as the quantise kernel needs it (see src/formats). */
export interface QuantiseFormat {
  readonly exponentBits: number;
  readonly mantissaBits: number;
  readonly bias: number;
  /** 'ieee': top exponent is inf/nan; 'fn': only S.1111.111 is NaN, no inf; 'none': no reserved codes. */
  readonly special: 'ieee' | 'fn' | 'none';
}

export interface QuantiseOptions {
  readonly rounding: 'nearest' | 'stochastic';
  readonly overflow: 'saturate' | 'inf';
  /** Round to FP16 (nearest-even) first, as the paper's IPU cast did. */
  readonly viaFp16: boolean;
  readonly seed: number;
  readonly stream: number;
}

/** One tensor of quantiseMany: its first n elements, rounded in place on their own random stream. */
/** One copy of Backend.copies16. */
export interface Copy16 {
  readonly src: Storage;
  readonly dst: Storage;
  readonly n: number;
}

export interface QuantiseManyTensor {
  readonly storage: Storage;
  readonly n: number;
  readonly stream: number;
}

export interface GemmParams {
  readonly transA: boolean;
  readonly transB: boolean;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly alpha: number;
  /** A and B: float32, or 16-bit storage of inputFormat's format (fp16 or bf16), read as stored. C is float32. */
  readonly a: Storage;
  readonly aOffset: number;
  readonly lda: number;
  readonly b: Storage;
  readonly bOffset: number;
  readonly ldb: number;
  readonly beta: number;
  readonly c: Storage;
  readonly cOffset: number;
  readonly ldc: number;
  readonly batch: number;
  readonly strideA: number;
  readonly strideB: number;
  readonly strideC: number;
  /** Operand precision the GEMM may assume (values are already quantised to it): lets CUDA use
   * FP16/BF16/FP8 tensor cores. The CPU backend always computes in FP32. */
  readonly inputFormat?: 'fp32' | 'tf32' | 'fp16' | 'bf16' | 'e4m3' | 'e5m2';
  /**
   * fp16 / bf16 only: the operands may be off the format's grid, and every backend rounds them to
   * it (nearest-even, overflow to infinity) as it reads them, so the product is that of the
   * rounded values. Lets a precision policy leave the rounding of a value that only products
   * read to the products' own operand packing.
   */
  readonly roundInputs?: boolean;
}


/**
 * One operand of gemmStrided as stored (before transA/transB): element (i, j) of batch entry
 * (p, q) at offset + p·batchStrides[0] + q·batchStrides[1] + i·ld + j. Two batch levels let a
 * product read per-(sequence, head) matrices straight out of a fused [B, S, 3, H, D] projection,
 * whose (b, h) offsets no single batch stride reaches.
 */
export interface StridedMatrix {
  readonly storage: Storage;
  readonly offset: number;
  readonly ld: number;
  readonly batchStrides: readonly [number, number];
}

/**
 * Which entries causal attention makes zero, so a backend may skip them (square products, m = n
 * or m = k as stated):
 * - 'none': a plain product;
 * - 'lower-output': C[i][j] for j > i is written as 0 (scores and their gradient above the
 *   diagonal, which a causal softmax ignores); needs m = n;
 * - 'k-to-row': op(A)[i][l] = 0 for l > i (probabilities, or their gradient, times a [keys, D]
 *   matrix), so the sum may stop at l = i; needs m = k;
 * - 'k-from-row': op(A)[i][l] = 0 for l < i (transposed probabilities times [queries, D]), so the
 *   sum may start at l = i; needs m = k.
 * The last two are promises about A: a backend that ignores them computes the full product, which
 * is the same whenever the skipped B entries are finite.
 */
export type CausalGemm = 'none' | 'lower-output' | 'k-to-row' | 'k-from-row';

/**
 * C = alpha·op(A)·op(B) + beta·C for each of batch[0]·batch[1] entries, in float32; sizes, flags
 * and inputFormat as GemmParams.
 */
export interface StridedGemmParams extends Pick<GemmParams, 'transA' | 'transB' | 'm' | 'n' | 'k' | 'alpha' | 'beta' | 'inputFormat'> {
  readonly batch: readonly [number, number];
  readonly a: StridedMatrix;
  readonly b: StridedMatrix;
  readonly c: StridedMatrix;
  readonly causal: CausalGemm;
}

export interface LayerNormParams {
  readonly x: Storage;
  readonly gamma: Storage | null;
  readonly beta: Storage | null;
  /** float32, or 16-bit storage: the normalised values written rounded to its format (nearest-even). */
  readonly out: Storage;
  /** Per-row mean and 1/sqrt(var + eps), saved for the backward kernel. */
  readonly mean: Storage;
  readonly rstd: Storage;
  readonly rows: number;
  readonly cols: number;
  readonly eps: number;
  /**
   * A residual add fused in: x is first written as scaleA·a + scaleB·b (a and b of x's size,
   * the same arithmetic as binary 'add'), then normalised.
   */
  readonly sumOf?: LayerNormSumOf | null;
}

export interface LayerNormSumOf {
  readonly a: Storage;
  readonly b: Storage;
  readonly scaleA: number;
  readonly scaleB: number;
  /** a is read rounded to this format (nearest-even), as if a rounding pass had run on it first; a may be 16-bit storage of it. */
  readonly readFormatA?: Format16;
}

export interface LayerNormGradParams {
  readonly x: Storage;
  readonly gamma: Storage | null;
  readonly mean: Storage;
  readonly rstd: Storage;
  readonly gradOut: Storage;
  readonly gradX: Storage;
  /** Null when not wanted. */
  readonly gradGamma: Storage | null;
  readonly gradBeta: Storage | null;
  readonly rows: number;
  readonly cols: number;
  readonly gradXScale: number;
  readonly gradGammaScale: number;
  readonly gradBetaScale: number;
  /**
   * gradX += result instead of gradX = result: a residual stream's gradient can then land in the
   * buffer that already holds the skip path's gradient, with no separate add.
   */
  readonly accumulateGradX: boolean;
  /**
   * With accumulateGradX: gradX = gradXAddend + result, the prior gradient read from this buffer
   * (same size) instead of from gradX, e.g. where gradX's own storage is still read by someone else.
   */
  readonly gradXAddend?: Storage | null;
  /** gradGamma += and gradBeta += instead of =, for parameters shared across calls (or micro-batches). */
  readonly accumulateParams: boolean;
  /**
   * Also writes scale·gradX (the final value, addend included) to target: the gradient a fused
   * residual add hands its scaled skip path, with no kernel of its own (T.addLayerNorm).
   */
  readonly gradXCopy?: { readonly target: Storage; readonly scale: number } | null;
  /** gradOut is read rounded to this format (nearest-even), as if a rounding pass had run on it first; gradOut may be 16-bit storage of it. */
  readonly gradOutReadFormat?: Format16;
  /** Also writes scale·gradX (the final value) rounded to target's format, into 16-bit storage. */
  readonly gradXCopy16?: { readonly target: Storage; readonly scale: number } | null;
}

export interface CrossEntropyParams {
  /** float32, or 16-bit storage (read as stored). */
  readonly logits: Storage;
  readonly labels: Storage;
  /** Per-row weight (0 drops the row), or null for all ones. */
  readonly mask: Storage | null;
  readonly rows: number;
  readonly vocab: number;
  /** Per-row mask·(logsumexp − logit[label]). */
  readonly loss: Storage;
  /** Per-row logsumexp, saved for the backward kernel. */
  readonly logSumExp: Storage;
}

export interface CrossEntropyGradParams {
  readonly logits: Storage;
  readonly labels: Storage;
  readonly mask: Storage | null;
  readonly logSumExp: Storage;
  /** Upstream gradient of each row's loss. */
  readonly gradLoss: Storage;
  /** float32, or 16-bit storage (the gradient written rounded to its format). */
  readonly gradLogits: Storage;
  readonly rows: number;
  readonly vocab: number;
  readonly scale: number;
}

export interface AdamWParams {
  readonly param: Storage;
  readonly grad: Storage;
  readonly m: Storage;
  readonly v: Storage;
  readonly n: number;
  /** int32 step counter t (1-based after the optimiser's increment), read on the device. */
  readonly step: Storage;
  readonly lr: number;
  /** lr_t = lr·lrScale·2^(−(t−1)·lrDecay). */
  readonly lrDecay: number;
  /** Per-parameter multiplier of the gradient step (unit scaling: 1/√length for 1-D params). */
  readonly lrScale: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Decoupled weight decay, applied with the undecayed, unscaled lr. */
  readonly weightDecay: number;
  /** Multiplies the gradient before use (e.g. 1/lossScale). */
  readonly gradScale: number;
}

/** One tensor of a multi-tensor AdamW step; the fields mean what AdamWParams's do. */
export interface AdamWMultiTensor {
  readonly param: Storage;
  readonly grad: Storage;
  readonly m: Storage;
  readonly v: Storage;
  readonly n: number;
  readonly lrScale: number;
  readonly weightDecay: number;
}

/** AdamW over many tensors at once: the settings every tensor shares, then the tensors. */
export interface AdamWMultiParams {
  readonly step: Storage;
  readonly lr: number;
  readonly lrDecay: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly gradScale: number;
  /** No storage may appear in two entries (their updates run concurrently on a device). */
  readonly tensors: readonly AdamWMultiTensor[];
}

export interface SgdmParams {
  readonly param: Storage;
  readonly grad: Storage;
  readonly momentum: Storage;
  readonly n: number;
  readonly step: Storage;
  readonly lr: number;
  readonly lrDecay: number;
  readonly lrScale: number;
  readonly mu: number;
  readonly weightDecay: number;
  readonly gradScale: number;
}

/** LAMB, phase 1: update m and v, write the raw update direction u = m̂/(√v̂+ε) + wd·θ. */
export interface LambUpdateParams {
  readonly param: Storage;
  readonly grad: Storage;
  readonly m: Storage;
  readonly v: Storage;
  readonly update: Storage;
  readonly n: number;
  readonly step: Storage;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly gradScale: number;
}

/** LAMB, phase 2: θ −= lr_t·trust·u with trust = ‖θ‖/‖u‖ (1 when either is 0). */
export interface LambApplyParams {
  readonly param: Storage;
  readonly update: Storage;
  /** 1-element sums of squares of θ and u. */
  readonly paramNormSq: Storage;
  readonly updateNormSq: Storage;
  readonly n: number;
  readonly step: Storage;
  /** lr_t = lr · schedule(t), schedule given as linear warmup then linear decay to zero. */
  readonly lr: number;
  readonly warmupSteps: number;
  readonly totalSteps: number;
  readonly useTrustRatio: boolean;
}

/**
 * Philox streams for the stochastic rounding points of a fused op, one stream per point: element
 * i of the unfused graph's tensor at point k rounds on stream element i of (seed, streams[k],
 * epoch), exactly as the quantise kernel rounding that whole tensor on that stream would.
 */
export interface RoundingStreams {
  readonly seed: number;
  readonly streams: readonly number[];
  /** The device epoch counter (RandomContext.epoch()); null: epoch 0. */
  readonly epoch: Storage | null;
}

/**
 * The rounding at each point of a fused op where the unfused graph had a quantise (fp16/bf16
 * activations): the quantise kernel's nearest path, or its stochastic path, bit for bit.
 */
export interface HighwayRounding {
  readonly format: QuantiseFormat;
  readonly overflow: QuantiseOptions['overflow'];
  readonly viaFp16: boolean;
  /** Stochastic rounding on these streams, in the order the params below list their points; null: nearest. */
  readonly stochastic: RoundingStreams | null;
}

/**
 * One step of a Recurrent Highway Network cell, element-wise over [B, H] (R = round, or the
 * identity when round is null; every arithmetic result is a float32 value first):
 *   pre = R(projected[:, step, :] + recurrent)                  [B, 2H], columns c then u
 *   c = R(tanh(pre_c)), u = R(σ(pre_u)), d = R(c − state), s = R(u·d), out = R(state + s)
 * exactly the unfused chain of add/tanh/sigmoid/sub/mul/add ops with a quantise after each.
 * Stochastic rounding points, in stream order: pre [B, 2H], c, u, d, s, out [B, H].
 */
export interface HighwayStepParams {
  /** [B, length, 2H]: the input projections of every step; only slot `step` is read. */
  readonly projected: Storage;
  /** [B, 2H]: state·W of this step. */
  readonly recurrent: Storage;
  /** [B, H]: h_{t−1}. */
  readonly state: Storage;
  /** [B, H]: h_t. */
  readonly out: Storage;
  /** [B, 2H]: the rounded pre-activations, saved for highwayStepGrad. */
  readonly pre: Storage;
  readonly batch: number;
  readonly width: number;
  readonly length: number;
  readonly step: number;
  readonly round: HighwayRounding | null;
}

/**
 * The gradients of highwayStep from its saved `pre`, with the unfused graph's rounding points
 * (each quantise rounds the gradient arriving at its output) and float32 roundings. Gradient
 * outputs may be null when not wanted.
 */
export interface HighwayStepGradParams {
  readonly pre: Storage;
  readonly state: Storage;
  /** [B, H]: gradient arriving at out. */
  readonly gradOut: Storage;
  /** [B, length, 2H]: slot `step` gets the gradient at pre; the other slots are not touched. */
  readonly gradProjected: Storage | null;
  /** Slot `step` += instead of =. */
  readonly accumulateProjected: boolean;
  /** [B, 2H]: the gradient at pre (written). */
  readonly gradRecurrent: Storage | null;
  /** [B, H]: gh − gd, the add's and the sub's contributions (gh the rounded gradOut, gd the rounded gradient at d). */
  readonly gradState: Storage | null;
  /**
   * gradState = (gradState + gh) − gd, rounded to float32 after each add as the unfused graph
   * accumulates its two contributions one after the other, instead of gradState = gh − gd.
   */
  readonly accumulateState: boolean;
  readonly batch: number;
  readonly width: number;
  readonly length: number;
  readonly step: number;
  /**
   * The forward call's rounding, streams included: c, u and d are recomputed from `pre`, so
   * the epoch must not have advanced since the forward call.
   */
  readonly round: HighwayRounding | null;
  /**
   * With stochastic `round`: the streams of the backward rounding points, in the order the
   * unfused graph's backward reaches them: the gradients at out, s, d, u, c [B, H] and pre
   * [B, 2H]. The last three are read only when gradProjected or gradRecurrent is wanted.
   */
  readonly gradStreams: RoundingStreams | null;
}

/** Stochastic rounding streams of a whole-sequence op: consecutive ids from `first`, one per rounding point per timestep. */
export interface SequenceStreams {
  readonly seed: number;
  readonly first: number;
  /** The device epoch counter (RandomContext.epoch()); null: epoch 0. */
  readonly epoch: Storage | null;
}

/** The activation rounding of a whole-sequence op (fp16/bf16 runs), or null for FP32. */
export interface SequenceRounding {
  readonly format: QuantiseFormat;
  readonly overflow: QuantiseOptions['overflow'];
  readonly viaFp16: boolean;
  /** Stochastic rounding: rounding point k of timestep t draws on stream first + POINTS·t + k. null: nearest. */
  readonly stochastic: SequenceStreams | null;
}

/**
 * The widest RHN a backend's highwaySequence runs: the CUDA kernels use one block of 2H threads
 * per batch row, and a block has at most 1024. Wider cells run one timestep at a time.
 */
export const HIGHWAY_SEQUENCE_MAX_WIDTH = 512;

/** Rounding points per timestep of highwaySequence (r, pre, c, u, d, s, h) and of its backward (gh, gs, gd, gu, gc, gPre). */
export const SEQUENCE_FORWARD_POINTS = 7;
export const SEQUENCE_BACKWARD_POINTS = 6;

/**
 * A whole Recurrent Highway Network recurrence, every timestep in one call. For each batch row b
 * and t = 0 … L−1, with h_{−1} = initial[b] and R the activation rounding (identity for FP32):
 *   r = R(scale·(h_{t−1}·weight))          the k-sum in order k = 0 … H−1, float32 after each + and ·
 *   pre = R(projected[b, t] + r)            [2H], columns c then u
 *   c = R(tanh(pre_c)), u = R(σ(pre_u)), d = R(c − h_{t−1}), s = R(u·d), h_t = R(h_{t−1} + s)
 * every result a float32 value first (tanh and σ evaluated in float64, as the unary kernels do).
 * This is the per-step loop of a matmul, its output rounding and highwayStep, up to the GEMM's
 * summation order (and, with stochastic rounding, other random streams). A stochastic point
 * rounds element i of its timestep's [B, 2H] or [B, H] tensor on element i of its stream.
 */
export interface HighwaySequenceParams {
  /** [B, L, 2H] */
  readonly projected: Storage;
  /** [H, 2H]: the recurrent weight. */
  readonly weight: Storage;
  /** [B, H]: h_{−1}. */
  readonly initial: Storage;
  /** [B, L, H]: h_t (written). */
  readonly states: Storage;
  /** [B, L, H]: h_{t−1} (written; saved for the backward and the weight gradient). */
  readonly previous: Storage;
  /** [B, L, 2H]: pre (written; saved for the backward). */
  readonly pre: Storage;
  readonly batch: number;
  readonly width: number;
  readonly length: number;
  readonly scale: number;
  readonly round: SequenceRounding | null;
}

/**
 * Backward of highwaySequence through time, t = L−1 … 0, as the per-step ops' backward: the
 * gradient arriving at h_t is
 *   G_t = ((gradStates[b, t] + gh_{t+1}) − gd_{t+1}) + gradScale·(gPre_{t+1}·weightᵀ)
 * (G_{L−1} = gradStates[b, L−1]); then gh = R(G_t), gs = R(gh), gd = R(gs·u), gu = R(gs·d),
 * gc = R(gd), gPre_c = R((1 − c²)·gc), gPre_u = R(u(1 − u)·gu), with c, u, d recomputed from pre
 * on the forward's streams (so the epoch must not have advanced). gradProjected gets gPre (also
 * the gradient at r: rounding it again would change nothing); gradInitial gets
 * (gh_0 − gd_0) + gradScale·(gPre_0·weightᵀ). Each gPre·weightᵀ sum runs in a CUDA warp's order
 * (32 strided partial sums, then a shuffle tree), on the CPU too. The weight's gradient is a GEMM
 * of `previous` and gradProjected, left to the caller.
 */
export interface HighwaySequenceGradParams {
  readonly pre: Storage;
  readonly previous: Storage;
  readonly weight: Storage;
  /** [B, L, H]: the gradient arriving at the states. */
  readonly gradStates: Storage;
  /** [B, L, 2H] (written) */
  readonly gradProjected: Storage;
  /** [B, H] (written), or null */
  readonly gradInitial: Storage | null;
  readonly batch: number;
  readonly width: number;
  readonly length: number;
  readonly gradScale: number;
  /** The forward call's rounding, streams included. */
  readonly round: SequenceRounding | null;
  /** With stochastic rounding: the backward's own streams (SEQUENCE_BACKWARD_POINTS per timestep). */
  readonly gradStreams: SequenceStreams | null;
}

/**
 * A [B, H, S, D] operand of fused attention as stored: element (b, h, s, d) at
 * offset + b·strides[0] + h·strides[1] + s·strides[2] + d (the head dimension is contiguous), so
 * q, k and v can be read straight out of a fused projection and the output written in the
 * layout the next projection reads.
 */
export interface AttentionOperand {
  readonly storage: Storage;
  readonly offset: number;
  readonly strides: readonly [number, number, number];
}

/** The largest head size attention takes (the CUDA kernels keep [rows, D] tiles in shared memory). */
export const ATTENTION_MAX_HEAD_DIM = 64;

/** Sizes and forward factors shared by attention and attentionGrad. */
export interface AttentionShape {
  readonly batch: number;
  readonly heads: number;
  /** query positions S of q and out */
  readonly queries: number;
  /** key positions of k and v */
  readonly keys: number;
  readonly headDim: number;
  /** multiplies q·kᵀ before the softmax */
  readonly temperature: number;
  /** multiplies P·v */
  readonly outputScale: number;
  /** key j > query i is masked (probability 0); needs queries = keys */
  readonly causal: boolean;
  /**
   * 16-bit attention as FlashAttention runs it under autocast: q, k, v and the output's gradient
   * are read rounded to this format (exact when the caller already rounded them), and the
   * probabilities P and the scaled score gradients logitGradScale·dS are rounded to it (nearest-
   * even, overflow to infinity) before they multiply anything; row statistics and outputs stay
   * float32. Absent: float32 throughout. Backends may use tensor cores for it.
   */
  readonly format?: Format16;
}

/**
 * The 16-bit formats an op may round values to as it reads them (attention's `format`, the
 * element-wise and layer-norm read formats, GemmParams.roundInputs).
 */
export type Format16 = 'fp16' | 'bf16';

/**
 * Fused scaled dot-product attention in float32, per (b, h), never holding the [S, S] scores in
 * memory: P = softmax(temperature·q·kᵀ) over the keys, out = outputScale·P·v, and
 * logSumExp[b, h, i] = log Σ_j exp(temperature·q_i·k_j) (masked keys left out), saved for the
 * backward. The same values as the unfused matmul, softmax, matmul chain up to float32
 * summation order.
 */
export interface AttentionParams extends AttentionShape {
  /** q, k and v: float32, or (with a format) all three 16-bit storage of it, read as stored. */
  readonly q: AttentionOperand;
  readonly k: AttentionOperand;
  readonly v: AttentionOperand;
  readonly out: AttentionOperand;
  /** With a format: also out rounded to it, into 16-bit storage of it (for products that read it). */
  readonly out16?: AttentionOperand | null;
  /** [B, H, S] contiguous (written) */
  readonly logSumExp: Storage;
}

/**
 * Backward of attention with P recomputed from logSumExp, each gradient with its own factor (unit
 * scaling's backward scales): with g the gradient arriving at out,
 *   dP = probsGradScale·g·vᵀ, dS = P∘(dP − rowsum(dP∘P)), rowsum(dP∘P) = probsGradScale·(g_i·out_i)/outputScale,
 *   gradQ = logitGradScale·dS·k, gradK = logitGradScale·dSᵀ·q, gradV = valueGradScale·Pᵀ·g.
 * The gradients are written, not accumulated; they may share a storage but must not overlap.
 * `delta` ([B, H, S] contiguous) is scratch for the row sums.
 */
export interface AttentionGradParams extends AttentionShape {
  readonly q: AttentionOperand;
  readonly k: AttentionOperand;
  readonly v: AttentionOperand;
  readonly out: AttentionOperand;
  readonly logSumExp: Storage;
  /** float32, or (with a format) 16-bit storage of it. */
  readonly gradOut: AttentionOperand;
  /** float32, or (with a format) all three 16-bit storage of it, written rounded. */
  readonly gradQ: AttentionOperand;
  readonly gradK: AttentionOperand;
  readonly gradV: AttentionOperand;
  readonly delta: Storage;
  readonly probsGradScale: number;
  readonly logitGradScale: number;
  readonly valueGradScale: number;
}

/** The work a backend had queued when the fence was made; `done()` asks without waiting. */
export interface DeviceFence {
  done(): boolean;
  /** Returns the fence's device event for reuse; call once, when no longer needed. */
  dispose(): void;
}

export interface Backend {
  readonly name: 'cpu' | 'cuda';

  /**
   * Asynchronous devices only (absent on the CPU, whose work is finished when queued): a fence
   * after the work queued so far, so a host loop can wait for the device without blocking the
   * event loop, which other runs in the same process need (src/train/device-wait.ts).
   */
  fence?(): DeviceFence;

  alloc(size: number, dtype: DType): Storage;
  release(storage: Storage): void;
  write(storage: Storage, data: Float32Array | Int32Array, offset?: number): void;
  /** Copies the storage to the host (the only synchronising call). */
  read(storage: Storage): Float32Array | Int32Array;
  /** Bytes currently allocated and the peak since start (device memory for CUDA). */
  memoryStats(): { allocatedBytes: number; peakBytes: number; reservedBytes: number };
  /** Starts a new peak measurement from what is allocated now. */
  resetPeakMemory(): void;

  fill(out: Storage, offset: number, n: number, value: number): void;
  /**
   * out = outScale·f(inScale·x), element-wise over n contiguous elements. readFormat: x is read
   * rounded to FP16 or BF16 (nearest-even, overflow to infinity), as if a rounding pass ran first.
   * out may be 16-bit storage: the results are written rounded to its format (nearest-even).
   */
  unary(kind: UnaryKind, x: Storage, out: Storage, n: number, inScale: number, outScale: number, readFormat?: Format16): void;
  /** gradX = gradScale·inScale·f'(inScale·x)·gradOut (written, not accumulated); readFormat: x and gradOut read rounded. */
  unaryGrad(
    kind: UnaryKind,
    x: Storage,
    gradOut: Storage,
    gradX: Storage,
    n: number,
    inScale: number,
    gradScale: number,
    readFormat?: Format16,
  ): void;
  /** Broadcasting binary op over `shape`; out is contiguous (it may alias a or b element-wise). */
  binary(
    kind: BinaryKind,
    a: StridedView,
    b: StridedView,
    out: Storage,
    shape: readonly number[],
    scaleA: number,
    scaleB: number,
  ): void;
  /** out = cond ≠ 0 ? a : b, broadcasting over `shape`. */
  where(cond: StridedView, a: StridedView, b: StridedView, out: Storage, shape: readonly number[]): void;
  /** dst[view] (=|+=) scale·src[view] over `shape`. With accumulate, dst positions may repeat. */
  copy(src: StridedView, dst: StridedView, shape: readonly number[], scale: number, accumulate: boolean): void;
  /** Reduces contiguous x of xShape to outShape (same rank, 1 on reduced axes); result × scale. */
  reduce(
    kind: ReduceKind,
    x: Storage,
    xShape: readonly number[],
    out: Storage,
    outShape: readonly number[],
    scale: number,
  ): void;
  gemm(params: GemmParams): void;
  /**
   * Independent products (none writes what another reads or writes), e.g. a matmul's input and
   * weight gradients. A backend may run them concurrently: small products leave most of a GPU
   * idle, and two side by side take little longer than one. Results equal `gemm` on each.
   */
  gemms(params: readonly GemmParams[]): void;
  /** Batched products over two batch levels with arbitrary strides (see StridedGemmParams). */
  gemmStrided(params: StridedGemmParams): void;
  /**
   * Independent gemmStrided products (none writes what another reads or writes), e.g. both
   * gradients of one product: a backend may run them side by side. Results equal gemmStrided on each.
   */
  gemmsStrided(params: readonly StridedGemmParams[]): void;
  /**
   * Row-wise softmax (or log-softmax) of inScale·x, times outScale. causalRows > 0: the rows are
   * the query positions of […, causalRows, cols] score matrices, and element (r, c) with
   * c > r mod causalRows counts as −∞ (probability 0), exactly as if a −∞ causal mask had been
   * added to x first; 0: no mask. softmaxGrad needs no mask of its own: from y it gives the
   * gradient of that mask-add form (0 where a probability is 0).
   */
  softmax(x: Storage, out: Storage, rows: number, cols: number, inScale: number, outScale: number, log: boolean, causalRows: number): void;
  /** From y = softmax(·) (or log-softmax): gradX = gradScale·y·(gradOut − Σ gradOut·y), or for
   * log-softmax gradScale·(gradOut − exp(y)·Σ gradOut). */
  softmaxGrad(y: Storage, gradOut: Storage, gradX: Storage, rows: number, cols: number, gradScale: number, log: boolean): void;
  layerNorm(params: LayerNormParams): void;
  layerNormGrad(params: LayerNormGradParams): void;
  /** out[i, :] = table[ids[i], :]. */
  gather(table: Storage, ids: Storage, out: Storage, count: number, dim: number): void;
  /** gradTable[ids[i], :] += scale·gradOut[i, :]. */
  scatterAdd(gradOut: Storage, ids: Storage, gradTable: Storage, count: number, dim: number, scale: number): void;
  crossEntropy(params: CrossEntropyParams): void;
  crossEntropyGrad(params: CrossEntropyGradParams): void;
  /** Fills n elements from the Philox stream (seed, stream, epoch[0]). */
  random(
    out: Storage,
    n: number,
    distribution: 'uniform' | 'normal',
    seed: number,
    stream: number,
    epoch: Storage | null,
    a: number,
    b: number,
  ): void;
  quantise(x: Storage, out: Storage, n: number, format: QuantiseFormat, options: QuantiseOptions, epoch: Storage | null): void;
  /**
   * Rounds many tensors in place, each exactly as quantise(t, t, n, format, {...options, stream})
   * would: the optimiser's weight and moment roundings and every parameter gradient's rounding,
   * one launch instead of one per tensor. No storage may appear twice.
   */
  quantiseMany(tensors: readonly QuantiseManyTensor[], format: QuantiseFormat, options: Omit<QuantiseOptions, 'stream'>, epoch: Storage | null): void;
  /** counter[0] += 1 (int32), on the device. */
  /**
   * dst = src rounded to the 16-bit format of dst's storage (nearest-even, overflow to infinity),
   * the first n elements, for every pair (all dst of one format, none overlapping a src): copies
   * that recur every step, such as a model's weights, which CUDA makes in one launch.
   */
  copies16(pairs: readonly Copy16[]): void;
  increment(counter: Storage): void;
  adamw(params: AdamWParams): void;
  /**
   * Exactly `adamw` once per entry of `tensors` (same float64 math, bit-identical results), in one
   * kernel launch where the backend can: a model's dozens of small parameters otherwise cost a
   * launch each. On CUDA the first call with a given set of tensors uploads a table describing
   * them, so that call must happen outside graph capture; a captured step replays the same table.
   */
  adamwMulti(params: AdamWMultiParams): void;
  sgdm(params: SgdmParams): void;
  lambUpdate(params: LambUpdateParams): void;
  lambApply(params: LambApplyParams): void;
  /** A fused Recurrent Highway Network step (see HighwayStepParams). */
  highwayStep(params: HighwayStepParams): void;
  highwayStepGrad(params: HighwayStepGradParams): void;
  /** A whole RHN recurrence in one call (see HighwaySequenceParams). */
  highwaySequence(params: HighwaySequenceParams): void;
  highwaySequenceGrad(params: HighwaySequenceGradParams): void;
  /** Fused scaled dot-product attention (see AttentionParams). */
  attention(params: AttentionParams): void;
  attentionGrad(params: AttentionGradParams): void;
  /** Waits for queued work (no-op on the CPU). */
  synchronize(): void;
}
