import type { PrecisionConfig, PrecisionMode } from '../config/schema.ts';
import type { FloatFormat } from '../formats/format.ts';
import { parseFormat } from '../formats/registry.ts';
import * as T from '../tensor/index.ts';
import type { GemmFormats } from './gemm-formats.ts';

/**
 * The one place where number formats enter the model (engine design note 5). Layers call
 * `output` on every arithmetic op's result, `parameter` where they use a weight, and `matmul`
 * around every matmul-like op; the trainer reads `weightStorage` to round updated weights.
 *
 * - fp32: every hook is the identity (no kernels, no cost).
 * - fp8 (unit-scaling-ops.md §6.3, applied to every matmul-like op of the model): the op's
 *   inputs are quantised to E4M3 in the forward pass and the gradient arriving at its output to
 *   E5M2 in the backward pass; everything else stays FP32. Saturating casts (§6.2).
 * - fp16 / bf16 (experiments.md §A5 "dtype float16"): every op output and the gradient arriving
 *   at it are rounded to the format, as are parameter gradients (see parameterGradient); LayerNorm statistics and the
 *   loss are computed in FP32 (the LayerNorm kernel works in FP32 and only its output is
 *   rounded; the cross-entropy output is not rounded). Overflow gives ±inf, as FP16 hardware
 *   does, so loss scaling can detect it. Weights are stored in the format unless
 *   `master_weights` keeps an FP32 copy, in which case `parameter` rounds the copy each use.
 */
/** A cast whose format carries its name and limits. */
export interface PolicyCast extends T.CastSpec {
  readonly format: FloatFormat;
}

export interface PrecisionPolicy {
  readonly mode: PrecisionMode;
  /** FP8 casts of matmul inputs (forward) and of the gradients at matmul outputs (backward). */
  readonly fp8: { readonly forward: PolicyCast; readonly backward: PolicyCast } | null;
  /** FP16/BF16: the cast applied to every op output and to the gradient arriving at it. */
  readonly activation: PolicyCast | null;
  /**
   * Format the weights live in between steps: the optimiser rounds each updated weight (and, as
   * the paper's Keras runs did, Adam's first moment / SGD's momentum) to it. null: FP32.
   */
  readonly weightStorage: PolicyCast | null;
  /** fp16/bf16 with an FP32 master copy: `parameter` rounds it to `activation` at each use. */
  readonly masterWeights: boolean;
  /**
   * Cast applied to each parameter's gradient at the end of every backward pass, to the sum of
   * that pass's contributions (the same as casting each use's gradient when, as in every model
   * here, a parameter is used once a pass); added to what earlier passes left, if anything.
   */
  readonly parameterGradient: PolicyCast | null;
  /** Rounds an op's output (and the gradient arriving at it). */
  output(t: T.Tensor): T.Tensor;
  /** A parameter as a layer uses it. */
  parameter(t: T.Tensor): T.Tensor;
  /** An operand of a matmul-like op as the GEMM reads it (FP8: quantised to E4M3). */
  gemmInput(t: T.Tensor): T.Tensor;
  /** The output of a matmul-like op (FP8: its gradient is quantised to E5M2; FP16/BF16: rounded). */
  gemmOutput(t: T.Tensor): T.Tensor;
  /** Format tags for GEMMs whose operands went through gemmInput (empty unless precision.matmul is native). */
  readonly gemmFormats: GemmFormats;
  /** gemmOutput(op(inputs.map(gemmInput), gemmFormats)): a whole matmul-like op. */
  matmul(inputs: readonly T.Tensor[], op: (inputs: T.Tensor[], formats: GemmFormats) => T.Tensor): T.Tensor;
  /**
   * matmul for an op whose output's gradient only its own products read, rounding it to the
   * format as they read it (a bias-free linear; 16-bit attention). With native FP16/BF16 products
   * and nearest rounding (`readFormat` non-null) that gradient's rounding pass goes
   * (GemmFormats.roundInputs), and with `outputRoundedOnRead` (every reader of the output rounds
   * it as it reads it: linears, 16-bit attention) the output's too: the same values, fewer passes.
   */
  linear(inputs: readonly T.Tensor[], op: (inputs: T.Tensor[], formats: GemmFormats) => T.Tensor, options?: { readonly outputRoundedOnRead?: boolean }): T.Tensor;
  /**
   * output(t) for a value that only linear products read: with `readFormat` non-null they round it
   * as they read it, so only its gradient is rounded here.
   */
  linearInput(t: T.Tensor): T.Tensor;
  /**
   * Non-null when products round their own operands (native FP16/BF16, nearest rounding, and
   * PolicyOptions.productsRoundOperands): linear and linearInput then leave roundings to the
   * products, and element-wise ops may round their inputs to this format as they read them
   * (T.UnaryOptions.readFormat) in place of rounding passes.
   */
  readonly readFormat: T.Format16 | null;
  /** Rounds a freshly initialised weight to the storage format (nearest), in place. */
  initialiseWeight(t: T.Tensor): void;
}

function cast(name: string, rounding: PrecisionConfig['rounding'], overflow: 'saturate' | 'inf'): PolicyCast {
  return { format: parseFormat(name), rounding, overflow };
}

const FP32_FORMATS: GemmFormats = {};

export interface PolicyOptions {
  /**
   * Native FP16/BF16 with nearest rounding: let linear products round their operands as they
   * pack them instead of rounding in separate passes (PrecisionPolicy.linear). Default true;
   * false gives the same values with the separate passes (for tests and benchmarks).
   */
  readonly productsRoundOperands?: boolean;
}

/** The policy of an experiment's `precision` section. */
export function precisionPolicy(config: PrecisionConfig, options: PolicyOptions = {}): PrecisionPolicy {
  const native = config.matmul === 'native';
  if (config.mode === 'fp8') {
    const family = config.fp8_family === 'paper' ? '-paper' : '';
    const fp8 = { forward: cast(`e4m3${family}`, config.rounding, 'saturate'), backward: cast(`e5m2${family}`, config.rounding, 'saturate') };
    const formats: GemmFormats = native ? { inputFormat: 'e4m3', gradFormat: 'e5m2' } : FP32_FORMATS;
    const matmul: PrecisionPolicy['matmul'] = (inputs, op) => T.quantise(op(inputs.map((t) => T.quantise(t, fp8.forward, null)), formats), null, fp8.backward);
    return {
      mode: config.mode,
      fp8,
      activation: null,
      weightStorage: null,
      masterWeights: false,
      parameterGradient: null,
      output: (t) => t,
      parameter: (t) => t,
      gemmInput: (t) => T.quantise(t, fp8.forward, null),
      gemmOutput: (t) => T.quantise(t, null, fp8.backward),
      gemmFormats: formats,
      matmul,
      linear: (inputs, op) => matmul(inputs, op),
      linearInput: (t) => t,
      readFormat: null,
      initialiseWeight: () => {},
    };
  }
  if (config.mode === 'fp16' || config.mode === 'bf16') {
    const activation = cast(config.mode, config.rounding, 'inf');
    const weightStorage = config.master_weights ? null : activation;
    const formats: GemmFormats = native ? { inputFormat: config.mode, gradFormat: config.mode } : FP32_FORMATS;
    const output = (t: T.Tensor) => T.quantise(t, activation, activation);
    const nearest: PolicyCast = { ...activation, rounding: 'nearest' };
    // The 16-bit products' operand packing rounds to nearest, so it can stand in for a nearest rounding pass.
    const productsRound = native && config.rounding === 'nearest' && (options.productsRoundOperands ?? true);
    const linearFormats: GemmFormats = productsRound ? { ...formats, roundInputs: true } : formats;
    const matmul: PrecisionPolicy['matmul'] = (inputs, op) => output(op([...inputs], formats));
    return {
      mode: config.mode,
      fp8: null,
      activation,
      weightStorage,
      masterWeights: config.master_weights,
      parameterGradient: activation,
      output,
      parameter: (t) => {
        // A weight's gradient is rounded once its backward pass has summed it (castGradient):
        // no gradient copy, and its product can write straight into the weight's gradient.
        if (!t.isLeaf || !t.requiresGrad) return T.quantise(t, config.master_weights ? nearest : null, activation);
        T.castGradient(t, activation);
        return config.master_weights ? T.quantise(t, nearest, null) : t;
      },
      gemmInput: (t) => t,
      gemmOutput: output,
      gemmFormats: formats,
      matmul,
      linear: (inputs, op, options) => {
        if (!productsRound) return matmul(inputs, op);
        const out = op([...inputs], linearFormats);
        return options?.outputRoundedOnRead ? out : T.quantise(out, activation, null);
      },
      linearInput: (t) => (productsRound ? T.quantise(t, null, activation) : output(t)),
      readFormat: productsRound ? config.mode : null,
      initialiseWeight: (t) => {
        if (weightStorage) T.quantiseInPlace(t, nearest);
      },
    };
  }
  return {
    mode: config.mode,
    fp8: null,
    activation: null,
    weightStorage: null,
    masterWeights: false,
    parameterGradient: null,
    output: (t) => t,
    parameter: (t) => t,
    gemmInput: (t) => t,
    gemmOutput: (t) => t,
    gemmFormats: FP32_FORMATS,
    matmul: (inputs, op) => op([...inputs], FP32_FORMATS),
    linear: (inputs, op) => op([...inputs], FP32_FORMATS),
    linearInput: (t) => t,
    readFormat: null,
    initialiseWeight: () => {},
  };
}
