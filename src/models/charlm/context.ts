import type { ExperimentConfig } from '../../config/schema.ts';
import * as nn from '../../nn/index.ts';
import * as T from '../../tensor/index.ts';
import type { ModelParameter } from '../types.ts';
import type { CharLMPlan, WeightKind } from './plan.ts';

/** What every layer needs while it is built. */
export class BuildContext {
  private readonly constants: T.Tensor[] = [];

  constructor(
    readonly config: ExperimentConfig,
    readonly plan: CharLMPlan,
    readonly policy: nn.PrecisionPolicy,
    readonly store: nn.ParameterStore,
  ) {}

  get scaling(): nn.Scaling {
    return this.plan.scaling;
  }

  /** A weight matrix or kernel, initialised by the rule set. */
  weight(name: string, shape: readonly number[], kind: WeightKind, fans: { fanIn: number; fanOut: number; inTrunk: boolean }): T.Tensor {
    const role: ModelParameter['role'] = kind === 'embedding' ? 'embedding' : name.startsWith('readout.') ? 'output' : 'weight';
    return this.store.create(name, shape, {
      role,
      init: this.plan.weightInit(kind, fans.fanIn, fans.fanOut),
      lrScale: this.plan.lrScale({ role, shape, fanIn: fans.fanIn, inTrunk: fans.inTrunk }),
      weightDecay: true,
    });
  }

  /** A fixed tensor made once (outside every scope) and released with the model. */
  constant(data: Float32Array, shape: readonly number[]): T.Tensor {
    const t = T.persistent(() => T.tensor(data, shape));
    this.constants.push(t);
    return t;
  }

  disposeConstants(): void {
    for (const t of this.constants.splice(0)) t.dispose();
  }

  /** A bias, gain or learned vector (no weight decay). */
  vector(name: string, shape: readonly number[], role: 'bias' | 'norm' | 'vector', value: number, inTrunk: boolean): T.Tensor {
    return this.store.create(name, shape, {
      role,
      init: { kind: 'constant', value },
      lrScale: this.plan.lrScale({ role, shape, fanIn: shape[0], inTrunk }),
      weightDecay: false,
    });
  }
}

/** Constants that depend on the sequence length, made once per length and kept. */
export interface SequenceConstants {
  /** Sinusoid table in reversed position order [L, F], times the plan's sinusoid scale. */
  readonly sinusoidsReversed: T.Tensor;
  /** 1 where key j ≤ query i, else 0 [L, L]. */
  readonly causal: T.Tensor;
}

/** What every layer needs during one forward pass. */
export interface ForwardContext {
  readonly batch: number;
  readonly length: number;
  readonly tap: nn.Tap;
  /** Made on first use for this length (only the attention mixer needs them). */
  constants(): SequenceConstants;
}
