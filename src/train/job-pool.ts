interface WaitingTask {
  priority: number;
  /** hands this task the slot of the task that just finished */
  start: () => void;
}

/** The error `run` rejects with when a task is withdrawn before it started (like fetch's). */
function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name === 'AbortError') return reason;
  const error = new Error('job withdrawn before it started', { cause: reason });
  error.name = 'AbortError';
  return error;
}

/**
 * At most `size` tasks at a time; the rest wait. When a slot frees, the waiting task with the
 * lowest priority number starts, ties in arrival order (all priorities equal: plain FIFO).
 */
export class JobPool {
  private running = 0;
  /** kept in start order: by priority, then arrival */
  private readonly waiting: WaitingTask[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`job pool size must be a positive integer, got ${size}`);
  }

  /**
   * Runs `task` once a slot is free and no more urgent task (lower `priority`) is waiting. If
   * `signal` has aborted before the task starts, the task is withdrawn (it never starts) and `run`
   * rejects with an error named 'AbortError'; once it has started, the signal is its own business.
   */
  async run<T>(task: () => Promise<T>, priority = 0, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) throw abortError(signal);
    // A finished task hands its slot straight to the next waiting one, so that a `run` called
    // before that one resumes cannot take the slot as well.
    if (this.running >= this.size) await this.wait(priority, signal);
    else this.running++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next.start();
      else this.running--;
    }
  }

  private wait(priority: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const withdraw = (): void => {
        const index = this.waiting.indexOf(entry);
        if (index >= 0) this.waiting.splice(index, 1);
        reject(abortError(signal as AbortSignal));
      };
      const entry: WaitingTask = {
        priority,
        start: () => {
          signal?.removeEventListener('abort', withdraw);
          resolve();
        },
      };
      // after the last entry that starts no later than this one: stable, so FIFO among equals
      let index = this.waiting.length;
      while (index > 0 && (this.waiting[index - 1] as WaitingTask).priority > priority) index--;
      this.waiting.splice(index, 0, entry);
      signal?.addEventListener('abort', withdraw, { once: true });
    });
  }
}
