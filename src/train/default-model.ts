import { buildCharLM } from '../models/charlm/index.ts';
import type { ModelBuilder } from './model-builder.ts';

/** The model of `model.kind` (only `charlm` exists so far). */
export const buildDefaultModel: ModelBuilder = (config, vocabSize, seed) => {
  switch (config.model.kind) {
    case 'charlm':
      return buildCharLM(config, vocabSize, seed);
  }
};
