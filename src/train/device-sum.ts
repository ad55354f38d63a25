import * as T from '../tensor/index.ts';
import { deviceIdle } from './device-wait.ts';

/**
 * A running sum that stays on the device: adding a scalar loss costs one kernel and no sync, and
 * the host reads it only at logging and evaluation points (design note 2). A NaN or inf added at
 * any step survives in the sum, so divergence is seen at the next read.
 */
export class DeviceSum {
  readonly total: T.Tensor;

  constructor(backend = T.defaultBackend()) {
    this.total = T.persistent(() => T.zeros([], 'f32', backend));
  }

  /** total += weight·value (value a scalar tensor on the same backend). */
  add(value: T.Tensor, weight = 1): void {
    const b = this.total.backend;
    b.binary('add', this.total.view(), value.view(), this.total.storage, [], 1, weight);
  }

  /** Reads the total (a device→host copy), after waiting for the device without blocking (device-wait.ts). */
  async read(): Promise<number> {
    await deviceIdle(this.total.backend);
    return this.total.item();
  }

  set(value: number): void {
    this.total.backend.fill(this.total.storage, 0, 1, value);
  }

  dispose(): void {
    this.total.dispose();
  }
}
