import * as T from '../tensor/index.ts';

/** weight; activation; gradient (with respect to an activation); weight-gradient. */
export type TensorRole = 'weight' | 'activation' | 'gradient' | 'weight-gradient';

/** Receives the values of probed tensors (host copies; the probe is for inspection only). */
export interface ProbeSink {
  /** `values` holds the entries the tap selected (all of them unless it passed a mask). */
  record(name: string, role: TensorRole, values: Float32Array, shape: readonly number[]): void;
}

export interface TapOptions {
  /** Only entries where this mask (broadcast over x's leading axes) is nonzero count, e.g. the
   * causal half of attention logits, whose other half is the mask value. */
  readonly mask?: T.Tensor;
}

/**
 * Marks a named point of the forward graph. A model calls `tap(name, x)` on the activations it
 * wants to expose and uses the result in place of x. Without a probe, tap is the identity and
 * costs nothing; with one, the activation is copied to the host now and the gradient arriving
 * at this point is copied during backward() (both synchronise: never use a probe in training).
 */
export type Tap = (name: string, x: T.Tensor, options?: TapOptions) => T.Tensor;

export const NO_TAP: Tap = (_name, x) => x;

function select(values: Float32Array, mask: Float32Array | null): Float32Array {
  if (!mask) return values;
  const kept: number[] = [];
  for (let i = 0; i < values.length; i++) if (mask[i % mask.length] !== 0) kept.push(values[i]);
  return Float32Array.from(kept);
}

export function probeTap(sink: ProbeSink): Tap {
  return (name, x, options = {}) => {
    const mask = options.mask ? options.mask.toFloat32Array() : null;
    if (mask && x.size % mask.length !== 0) throw new Error(`probe ${name}: mask ${options.mask!.describe()} does not tile ${x.describe()}`);
    sink.record(name, 'activation', select(x.toFloat32Array(), mask), x.shape);
    if (!x.requiresGrad || !T.isGradEnabled()) return x;
    return T.customGradient([x], () => T.alias(x), (g) => {
      sink.record(name, 'gradient', select(g.toFloat32Array(), mask), g.shape);
      return [T.alias(g)];
    });
  };
}
