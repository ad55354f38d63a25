import type { ExperimentConfig } from '../config/schema.ts';
import type { LanguageModel } from '../models/types.ts';

/** A model the run can release when it is over (parameters, gradients, constants). */
export type RunModel = LanguageModel & { dispose?(): void };

/** Builds an experiment's model on the current default backend from the run's model seed. */
export type ModelBuilder = (config: ExperimentConfig, vocabSize: number, seed: number) => RunModel;
