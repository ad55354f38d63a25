import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { ReproError } from '../errors.ts';
import type { Ids } from './vocabulary.ts';

export const SPLITS = ['train', 'valid', 'test'] as const;
export type Split = (typeof SPLITS)[number];

export interface SourceStamp {
  readonly path: string;
  readonly bytes: number;
  readonly mtimeMs: number;
}

/** meta.json of a prepared cache; written last, so its presence marks a finished preparation. */
export interface PreparedMeta {
  readonly vocabSize: number;
  readonly idType: 'u16' | 'u32';
  /** Number of characters (code points) of each split. */
  readonly tokens: Record<Split, number>;
  /** Size and mtime of each source file, so a changed source invalidates the cache. */
  readonly sources: Record<Split, SourceStamp>;
}

export interface CharDataset {
  /** Id → character (one code point each), in code-point order. */
  readonly vocab: string[];
  readonly splits: Record<Split, Ids>;
}

export function idsFileName(split: Split, idType: 'u16' | 'u32'): string {
  return `${split}.ids.${idType}`;
}

export function stampSource(path: string): SourceStamp {
  const s = statSync(path);
  return { path, bytes: s.size, mtimeMs: Math.floor(s.mtimeMs) };
}

/** The cache's meta.json, or null when there is none or it cannot be parsed. */
export function readMeta(cacheDir: string): PreparedMeta | null {
  const path = join(cacheDir, 'meta.json');
  if (!existsSync(path)) return null;
  try {
    const meta = JSON.parse(readFileSync(path, 'utf8')) as PreparedMeta;
    return meta && typeof meta.vocabSize === 'number' && meta.tokens && meta.sources ? meta : null;
  } catch {
    return null;
  }
}

/** Whether cacheDir holds a complete preparation of exactly these source files. */
export function isPrepared(cacheDir: string, sources: Record<Split, string>): boolean {
  const meta = readMeta(cacheDir);
  if (!meta || !existsSync(join(cacheDir, 'vocab.json'))) return false;
  const bytesPerId = meta.idType === 'u16' ? 2 : 4;
  return SPLITS.every((split) => {
    const then = meta.sources[split];
    const ids = join(cacheDir, idsFileName(split, meta.idType));
    if (!then || !existsSync(sources[split]) || !existsSync(ids)) return false;
    const now = stampSource(sources[split]);
    return then.bytes === now.bytes && then.mtimeMs === now.mtimeMs && statSync(ids).size === meta.tokens[split] * bytesPerId;
  });
}

/** Reads a file straight into the typed array's memory (no second copy of a 1 GB split). */
function readIds(path: string, count: number, idType: 'u16' | 'u32'): Ids {
  const ids = idType === 'u16' ? new Uint16Array(count) : new Uint32Array(count);
  const bytes = new Uint8Array(ids.buffer);
  const fd = openSync(path, 'r');
  try {
    let offset = 0;
    while (offset < bytes.length) {
      const n = readSync(fd, bytes, offset, Math.min(bytes.length - offset, 1 << 30), offset);
      if (n === 0) break;
      offset += n;
    }
    if (offset !== bytes.length || statSync(path).size !== bytes.length) {
      throw new ReproError(`${path}: expected ${bytes.length} bytes, found ${statSync(path).size}; run \`repro data prepare\` again`);
    }
  } finally {
    closeSync(fd);
  }
  return ids;
}

/** Loads a prepared cache (ids are little-endian on disk, read as native typed arrays). */
export function readPrepared(cacheDir: string): CharDataset {
  if (endianness() !== 'LE') throw new ReproError('prepared datasets are little-endian; this machine is big-endian');
  const meta = readMeta(cacheDir);
  if (!meta) throw new ReproError(`${join(cacheDir, 'meta.json')}: missing or unreadable; run \`repro data prepare\``);
  const vocabPath = join(cacheDir, 'vocab.json');
  const vocab = JSON.parse(readFileSync(vocabPath, 'utf8')) as string[];
  if (!Array.isArray(vocab) || vocab.length !== meta.vocabSize) {
    throw new ReproError(`${vocabPath}: expected ${meta.vocabSize} entries (meta.json); run \`repro data prepare\` again`);
  }
  const splits = {} as Record<Split, Ids>;
  for (const split of SPLITS) splits[split] = readIds(join(cacheDir, idsFileName(split, meta.idType)), meta.tokens[split], meta.idType);
  return { vocab, splits };
}
