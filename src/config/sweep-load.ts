import { dirname } from 'node:path';
import { fileChain } from './chain.ts';
import { resolveCatalogueFile } from './catalogue.ts';
import { validationError } from './issues.ts';
import { mergeLayers } from './layers.ts';
import { displayPath } from './paths.ts';
import { SweepSchema, type SweepConfig } from './sweep-schema.ts';

export interface ResolvedSweep {
  sweep: SweepConfig;
  file: string;
  /** the file and its `extends` ancestors, most distant first */
  chain: string[];
  /** folder that a .yaml path in `base` is relative to (that of the file that set it) */
  baseRelativeTo: string;
}

/** Loads a sweep by name (under experiments/sweeps/) or .yaml path, following `extends`. */
export function loadSweep(nameOrPath: string): ResolvedSweep {
  const file = resolveCatalogueFile(nameOrPath, 'sweep');
  const chain = fileChain(file, 'sweep');
  const merged = mergeLayers(chain.layers);
  const parsed = SweepSchema.safeParse(merged.data);
  if (!parsed.success)
    throw validationError(parsed.error, merged.data, SweepSchema, (key) => merged.sources.get(key) ?? displayPath(file));
  const setters = chain.files.filter((_, i) => 'base' in (chain.layers[i]?.data ?? {}));
  return { sweep: parsed.data, file, chain: chain.files, baseRelativeTo: dirname(setters[setters.length - 1] ?? file) };
}
