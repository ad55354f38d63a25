import type { ModelParameter } from '../models/types.ts';
import * as T from '../tensor/index.ts';

/** How a parameter's initial values are drawn. */
export type Init =
  | { readonly kind: 'normal'; readonly std: number }
  | { readonly kind: 'uniform'; readonly limit: number }
  | { readonly kind: 'constant'; readonly value: number };

/** U(±√(3·variance)): a uniform distribution of the given variance (DEMO's "var 1" is U(±√3)). */
export function uniformWithVariance(variance: number): Init {
  return { kind: 'uniform', limit: Math.sqrt(3 * variance) };
}

/** Keras' Glorot-uniform: U(±√(6/(fanIn + fanOut))). */
export function glorotUniform(fanIn: number, fanOut: number): Init {
  return { kind: 'uniform', limit: Math.sqrt(6 / (fanIn + fanOut)) };
}

export interface ParameterOptions {
  readonly role: ModelParameter['role'];
  readonly init: Init;
  readonly lrScale?: number;
  readonly weightDecay?: boolean;
}

/**
 * Philox streams for initialisation live below 2^20, where RandomContext's per-step streams
 * start, so initial weights never share numbers with dropout or stochastic rounding.
 */
const INIT_STREAMS = 1 << 20;

/** FNV-1a hash of a parameter name, folded into the initialisation stream range. */
export function nameStream(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % INIT_STREAMS;
}

/**
 * Named, persistent, trainable tensors. Each parameter's values come from Philox keyed by the
 * model seed and a stream derived from its name, so CPU and CUDA runs (and models that differ
 * only in other layers) start from identical weights.
 */
export class ParameterStore {
  private readonly entries: ModelParameter[] = [];
  private readonly streams = new Set<number>();

  constructor(
    readonly seed: number,
    private readonly onCreate: (t: T.Tensor) => void = () => {},
  ) {}

  create(name: string, shape: readonly number[], options: ParameterOptions): T.Tensor {
    if (this.entries.some((p) => p.name === name)) throw new Error(`parameter ${name} defined twice`);
    let stream = nameStream(name);
    while (this.streams.has(stream)) stream = (stream + 1) % INIT_STREAMS;
    this.streams.add(stream);
    const tensor = T.persistent(() => {
      const { init } = options;
      const t =
        init.kind === 'normal'
          ? T.randomNormal(shape, this.seed, stream, 0, init.std)
          : init.kind === 'uniform'
            ? T.randomUniform(shape, this.seed, stream, -init.limit, init.limit)
            : T.full(shape, init.value);
      t.requiresGrad = true;
      t.name = name;
      return t;
    });
    this.onCreate(tensor);
    this.entries.push({
      name,
      tensor,
      role: options.role,
      lrScale: options.lrScale ?? 1,
      weightDecay: options.weightDecay ?? false,
    });
    return tensor;
  }

  get parameters(): readonly ModelParameter[] {
    return this.entries;
  }

  dispose(): void {
    for (const p of this.entries) {
      p.tensor.grad?.dispose();
      p.tensor.grad = null;
      p.tensor.dispose();
    }
  }
}
