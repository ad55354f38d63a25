import * as T from '../tensor/index.ts';

/**
 * The optimiser's 1-based step t, kept as an int32 on the device and advanced there
 * (`backend.increment`), so the update kernels read t without a host round trip and a whole
 * training step can be captured in a CUDA graph (design note 2).
 */
export class StepCounter {
  readonly tensor: T.Tensor;

  constructor(backend = T.defaultBackend()) {
    this.tensor = T.persistent(() => T.zeros([1], 'i32', backend));
    this.tensor.name = 'optimiser.step';
  }

  /** t += 1 on the device; call once per applied update, before the update kernels. */
  advance(): void {
    this.tensor.backend.increment(this.tensor.storage);
  }

  dispose(): void {
    this.tensor.dispose();
  }
}
