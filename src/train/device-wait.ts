import type { Backend, DeviceFence } from '../backend/backend.ts';

/*
 * Waiting for the GPU without blocking the event loop. A blocking read (cuStreamSynchronize)
 * stops the whole process until this run's work is done, so other runs sharing the process (a
 * sweep's trials on one GPU) could not queue theirs meanwhile and the GPU would sit idle. These
 * helpers poll a fence and yield between polls instead. On the CPU backend they return at once.
 */

/** Lets timers, signals, the progress bar and other runs go ahead (no device sync). */
export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

async function waitFor(fence: DeviceFence): Promise<void> {
  while (!fence.done()) await yieldToEventLoop();
}

/** Resolves once the backend has finished everything queued so far. */
export async function deviceIdle(backend: Backend): Promise<void> {
  const fence = backend.fence?.();
  if (!fence) return;
  try {
    await waitFor(fence);
  } finally {
    fence.dispose();
  }
}

/**
 * Keeps at most `depth` units of work (training steps, evaluation batches) queued ahead of the
 * device. Without a limit the host runs ahead until the driver's launch queue is full and then
 * blocks inside a launch, which again stalls every other run in the process.
 */
export class QueueLimit {
  private readonly pending: DeviceFence[] = [];

  constructor(
    private readonly backend: Backend,
    private readonly depth = 3,
  ) {}

  /** Call after queuing one unit: returns once at most `depth` units are unfinished. */
  async queued(): Promise<void> {
    const fence = this.backend.fence?.();
    if (!fence) return;
    this.pending.push(fence);
    while (this.pending.length > this.depth) {
      const oldest = this.pending[0]!;
      await waitFor(oldest);
      oldest.dispose();
      this.pending.shift();
    }
  }

  dispose(): void {
    for (const fence of this.pending.splice(0)) fence.dispose();
  }
}
