import { describe, expect, it } from 'vitest';
import { evalBatches, type WindowOptions } from '../../src/data/batching.ts';
import type { LanguageModel } from '../../src/models/types.ts';
import * as T from '../../src/tensor/index.ts';
import { bitsPerCharacter, splitLoss } from '../../src/train/evaluate.ts';

const WINDOWS: WindowOptions = { sequences: 2, sequenceLength: 8, overlap: 3 };

/**
 * A "model" whose loss on a batch is the masked mean of a per-token value (value[id] = id / 10),
 * so the exact split loss is the mean of value over every scored character: computable here
 * without the engine.
 */
function tokenValueModel(vocabSize: number): LanguageModel {
  const table = T.persistent(() => T.tensor(Array.from({ length: vocabSize }, (_, id) => id / 10), [vocabSize, 1]));
  return {
    parameters: [],
    loss(batch) {
      const [b, l] = batch.tokens.shape;
      const values = T.reshape(T.embedding(table, batch.tokens), [b, l]);
      const count = T.sum(batch.mask);
      return { loss: T.div(T.sum(T.mul(values, batch.mask)), count), count };
    },
  };
}

describe('split loss and BPC (§A6)', () => {
  it('BPC is nats / ln 2', () => {
    expect(bitsPerCharacter(Math.LN2)).toBe(1);
    expect(bitsPerCharacter(Math.log(256))).toBeCloseTo(8, 12);
  });

  it('weights each batch mean by its scored count, so every character counts once', async () => {
    // 37 characters: 8 windows of 5 new characters; the last batch is partly filler, so batch
    // means are over different counts and an unweighted mean of batch means would be wrong
    const data = Uint16Array.from({ length: 37 }, (_, i) => (i * 7) % 13);
    const exact = Array.from(data).reduce((s, id) => s + id / 10, 0) / data.length;
    const batches = [...evalBatches(data, WINDOWS)];
    const unweighted = batches.reduce((s, b) => {
      let sum = 0;
      for (let i = 0; i < b.mask.length; i++) sum += b.mask[i] * (b.tokens[i] / 10);
      return s + sum / b.scored;
    }, 0) / batches.length;
    expect(Math.abs(unweighted - exact)).toBeGreaterThan(1e-3);
    expect(await splitLoss(tokenValueModel(13), batches, WINDOWS)).toBeCloseTo(exact, 6);
  });

  it('eval_batches limits evaluation to the first batches', async () => {
    const data = Uint16Array.from({ length: 37 }, (_, i) => (i * 7) % 13);
    const first = [...evalBatches(data, WINDOWS)][0];
    let sum = 0;
    for (let i = 0; i < first.mask.length; i++) sum += first.mask[i] * (first.tokens[i] / 10);
    expect(await splitLoss(tokenValueModel(13), evalBatches(data, WINDOWS), WINDOWS, 1)).toBeCloseTo(sum / first.scored, 6);
  });
});
