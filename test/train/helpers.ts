import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadExperiment } from '../../src/config/load.ts';
import type { ExperimentConfig } from '../../src/config/schema.ts';
import { sampleDir } from '../../src/data/paths.ts';

export function tempDir(prefix = 'repro-train-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** charlm-quick on the CPU with overrides (e.g. 'training.steps=40'). */
export function quickConfig(...overrides: string[]): ExperimentConfig {
  return loadExperiment('charlm-quick', ['device=cpu', ...overrides]).config;
}

/** Entropy in bits of the character (code point) frequencies of a split of data/sample. */
export function unigramEntropyBits(split: 'train' | 'valid' | 'test'): number {
  const counts = new Map<string, number>();
  let total = 0;
  for (const ch of readFileSync(join(sampleDir(), `${split}.txt`), 'utf8').replace(/\r\n?/g, '\n')) {
    counts.set(ch, (counts.get(ch) ?? 0) + 1);
    total++;
  }
  let bits = 0;
  for (const n of counts.values()) bits -= (n / total) * Math.log2(n / total);
  return bits;
}
