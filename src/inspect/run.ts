import { existsSync } from 'node:fs';
import { createBackend } from '../backend/select.ts';
import { loadExperiment, type ExperimentFlags } from '../config/load.ts';
import type { ExperimentConfig } from '../config/schema.ts';
import { trainBatches } from '../data/batching.ts';
import { loadCharDataset, locateDataset, type DatasetSpec } from '../data/charlm.ts';
import type { FloatFormat } from '../formats/format.ts';
import { parseFormat } from '../formats/registry.ts';
import { buildCharLM } from '../models/charlm/index.ts';
import * as T from '../tensor/index.ts';
import { inspectModel } from './collect.ts';
import type { TensorReport } from './stats.ts';

export interface InspectRequest {
  readonly experiment: string;
  readonly overrides?: readonly string[];
  readonly flags?: Partial<ExperimentFlags>;
  readonly dataDir?: string;
  /** Receives one-line notes (e.g. the dataset fallback); the CLI prints them on stderr. */
  readonly note?: (line: string) => void;
}

export interface InspectResult {
  readonly experiment: string;
  readonly config: ExperimentConfig;
  /** the dataset the batch came from (differs from the config's after a fallback) */
  readonly dataset: string;
  readonly vocabSize: number;
  /** FP16 and the FP8 pair of the configured family, in that order */
  readonly formats: readonly FloatFormat[];
  /** the loss gradient's multiplier (static loss scale, or the dynamic scale's initial value) */
  readonly lossScale: number;
  readonly loss: number;
  readonly tensors: readonly TensorReport[];
}

/** FP16 and the configured FP8 family's E4M3 and E5M2. */
export function inspectedFormats(config: ExperimentConfig): FloatFormat[] {
  const suffix = config.precision.fp8_family === 'paper' ? '-paper' : '';
  return [parseFormat('fp16'), parseFormat(`e4m3${suffix}`), parseFormat(`e5m2${suffix}`)];
}

/** The loss-gradient multiplier a training step would start with. */
export function initialLossScale(config: ExperimentConfig): number {
  const dynamic = config.training.dynamic_loss_scale;
  return dynamic === false ? config.training.loss_scale : dynamic.init;
}

/**
 * Builds the experiment's model at initialisation, runs its first training batch forward and
 * backward, and reports every weight, activation and gradient. WikiText-103 that is not
 * downloaded falls back to the shipped sample text (with a note): at initialisation the
 * statistics do not depend on which English text is used.
 */
export async function inspectExperiment(request: InspectRequest): Promise<InspectResult> {
  const { config } = loadExperiment(request.experiment, request.overrides ?? [], request.flags ?? {});
  if (config.model.kind !== 'charlm') throw new Error(`inspect: unsupported model kind ${config.model.kind}`);
  let spec: DatasetSpec = { kind: config.data.dataset, path: config.data.path };
  if (spec.kind === 'wikitext103' && !existsSync(locateDataset(spec, request.dataDir).sources.train)) {
    request.note?.('inspect: WikiText-103 is not downloaded; using the shipped sample text (statistics at initialisation do not depend on the text)');
    spec = { kind: 'sample' };
  }
  const dataset = await loadCharDataset(spec, request.dataDir);
  const window = { sequences: config.data.sequences, sequenceLength: config.data.sequence_length, overlap: config.data.overlap };
  const first = trainBatches(dataset.splits.train, window, config.seed).next().value;
  const backend = await createBackend(config.device);
  const formats = inspectedFormats(config);
  const lossScale = initialLossScale(config);
  const vocabSize = dataset.vocab.length;
  const inspection = T.withBackend(backend, () => {
    const previousRandom = T.randomContext();
    T.setRandomContext(new T.RandomContext(config.seed));
    const model = buildCharLM(config, vocabSize, config.seed);
    try {
      const shape = [config.data.sequences, config.data.sequence_length];
      const batch = T.persistent(() => ({ tokens: T.tensor(first.tokens, shape), mask: T.tensor(first.mask, shape) }));
      try {
        return inspectModel(model, batch, { formats, lossScale });
      } finally {
        batch.tokens.dispose();
        batch.mask.dispose();
      }
    } finally {
      model.dispose();
      T.setRandomContext(previousRandom);
    }
  });
  return { experiment: request.experiment, config, dataset: spec.kind, vocabSize, formats, lossScale, loss: inspection.loss, tensors: inspection.tensors };
}
