import type { Batch, WindowOptions } from '../data/batching.ts';
import type { LanguageModel, TokenBatch } from '../models/types.ts';
import * as T from '../tensor/index.ts';
import { DeviceSum } from './device-sum.ts';
import { QueueLimit } from './device-wait.ts';

/** Bits per character from mean nats per character (§A6). */
export function bitsPerCharacter(nats: number): number {
  return nats / Math.LN2;
}

/** A host batch as device tensors [sequences, sequence_length] (inside the caller's scope). */
export function toTokenBatch(batch: Batch, windows: WindowOptions): TokenBatch {
  const shape = [windows.sequences, windows.sequenceLength];
  return { tokens: T.tensor(batch.tokens, shape, { dtype: 'i32' }), mask: T.tensor(batch.mask, shape) };
}

/**
 * A split's loss (§A6): Σ(batch mean loss × scored characters) / Σ scored characters, i.e. the
 * exact mean nats per scored character over the batches given. The weighted sum accumulates on
 * the device and is read once at the end. `limit` caps the number of batches (quick runs).
 */
export async function splitLoss(model: LanguageModel, batches: Iterable<Batch>, windows: WindowOptions, limit: number | null = null): Promise<number> {
  const sum = new DeviceSum();
  const queue = new QueueLimit(sum.total.backend);
  let scored = 0;
  let used = 0;
  try {
    for (const batch of batches) {
      if (limit !== null && used >= limit) break;
      used++;
      if (batch.scored === 0) continue;
      T.tidy(() =>
        T.noGrad(() => {
          const { loss } = model.loss(toTokenBatch(batch, windows), { training: false });
          sum.add(loss, batch.scored);
        }),
      );
      scored += batch.scored;
      await queue.queued();
    }
    return scored === 0 ? NaN : (await sum.read()) / scored;
  } finally {
    queue.dispose();
    sum.dispose();
  }
}
