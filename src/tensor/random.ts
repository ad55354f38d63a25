import type { Backend, Storage } from '../backend/backend.ts';
import { defaultBackend } from './device.ts';
import { activeSettings } from './run-context.ts';

/**
 * Where random numbers come from (design note 6): a seed, a per-use stream id, and an epoch
 * counter that lives in device memory and advances once per training step. Stream ids restart at
 * the same value every step, so a captured step replays with the same stream ids while the epoch
 * makes the numbers fresh.
 */
export class RandomContext {
  private next: number;
  private epochStorage: { storage: Storage; backend: Backend } | null = null;

  constructor(
    readonly seed: number,
    private readonly firstStream = 1 << 20,
  ) {
    this.next = firstStream;
  }

  /** A stream id for one random use within the current step. */
  nextStream(): number {
    return this.next++;
  }

  /** The device-side epoch counter (allocated on the default backend at first use). */
  epoch(): Storage {
    if (!this.epochStorage) {
      const backend = defaultBackend();
      const storage = backend.alloc(1, 'i32');
      backend.fill(storage, 0, 1, 0);
      this.epochStorage = { storage, backend };
    }
    return this.epochStorage.storage;
  }

  /** Releases the epoch counter (a run's own CUDA backend can then give all its memory back); a later use allocates a fresh one at epoch 0. */
  dispose(): void {
    if (this.epochStorage) this.epochStorage.backend.release(this.epochStorage.storage);
    this.epochStorage = null;
  }

  /** Starts a step: stream ids restart and the epoch advances (on the device, no sync). */
  beginStep(): void {
    this.next = this.firstStream;
    defaultBackend().increment(this.epoch());
  }
}

/** The random context of ops that draw random numbers (scoped like the default backend: run-context.ts). */
export function randomContext(): RandomContext {
  const settings = activeSettings();
  return (settings.random ??= new RandomContext(0));
}

export function setRandomContext(next: RandomContext): void {
  activeSettings().random = next;
}
