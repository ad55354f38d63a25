import type { ExperimentConfig } from '../../src/config/schema.ts';
import type { LanguageModel, ModelParameter } from '../../src/models/types.ts';
import * as T from '../../src/tensor/index.ts';

/**
 * A real, tiny language model for trainer tests: position i is predicted from token i−1 through
 * a learned [V, V] table of logits (a bigram model), position 0 from a learned vector (the
 * char-LM's pad-and-shift). It honours the LanguageModel contract: masked mean loss, count, and
 * `lossScale` on the loss gradient. `nanAfterSteps` turns the training loss into NaN from that
 * training call on, to exercise divergence handling.
 */
export function buildBigramModel(
  _config: ExperimentConfig,
  vocabSize: number,
  seed: number,
  options: { nanAfterSteps?: number } = {},
): LanguageModel {
  const table = T.persistent(() => T.randomNormal([vocabSize, vocabSize], seed, 1, 0, 0.1));
  const padding = T.persistent(() => T.zeros([vocabSize]));
  const parameters: ModelParameter[] = [
    { name: 'bigram.table', tensor: table, role: 'weight', lrScale: 1, weightDecay: true },
    { name: 'padding', tensor: padding, role: 'vector', lrScale: 1, weightDecay: false },
  ];
  for (const p of parameters) {
    p.tensor.requiresGrad = true;
    p.tensor.name = p.name;
  }
  let trainingCalls = 0;
  return {
    parameters,
    loss(batch, { training, lossScale = 1 }) {
      const [sequences, length] = batch.tokens.shape;
      const previous = T.slice(batch.tokens, 1, 0, length - 1);
      const fromPrevious = T.embedding(table, previous);
      const first = T.broadcastTo(T.reshape(padding, [1, 1, vocabSize]), [sequences, 1, vocabSize]);
      const logits = T.reshape(T.concat([first, fromPrevious], 1), [sequences * length, vocabSize]);
      const labels = T.reshape(batch.tokens, [sequences * length]);
      const mask = T.reshape(batch.mask, [sequences * length]);
      let loss = T.crossEntropy(logits, labels, mask, { gradScale: lossScale });
      if (training && options.nanAfterSteps !== undefined && ++trainingCalls > options.nanAfterSteps) loss = T.mul(loss, NaN);
      return { loss, count: T.sum(mask) };
    },
  };
}
