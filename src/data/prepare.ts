import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ReproError } from '../errors.ts';
import { writeFileAtomic } from './atomic.ts';

export const SPLITS = ['train', 'valid', 'test'] as const;
export type Split = (typeof SPLITS)[number];

export interface PreparedMeta {
  readonly vocabSize: number;
  readonly idType: 'u16' | 'u32';
  readonly tokens: Record<Split, number>;
  /** Size and mtime of each source file, so a changed source invalidates the cache. */
  readonly sources: Record<Split, { path: string; bytes: number; mtimeMs: number }>;
}

/** Reads a split as one string, turning CRLF and CR into LF (Python's universal newlines). */
export function readSplitText(path: string): string {
  if (!existsSync(path)) throw new ReproError(`${path}: file not found`);
  return readFileSync(path, 'utf8').replace(/\r\n?/g, '\n');
}

/** Every code point that occurs, sorted by code point (not by UTF-16 unit, which misorders astral characters). */
export function buildVocabulary(texts: readonly string[]): string[] {
  const seen = new Set<number>();
  for (const text of texts) for (const ch of text) seen.add(ch.codePointAt(0)!);
  return [...seen].sort((a, b) => a - b).map((cp) => String.fromCodePoint(cp));
}

export function encode(text: string, vocab: readonly string[], what: string): Uint16Array | Uint32Array {
  const index = new Map<number, number>();
  vocab.forEach((ch, i) => index.set(ch.codePointAt(0)!, i));
  const ids: number[] = [];
  for (const ch of text) {
    const id = index.get(ch.codePointAt(0)!);
    if (id === undefined) throw new ReproError(`${what}: character U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} is not in the vocabulary`);
    ids.push(id);
  }
  return vocab.length <= 65536 ? Uint16Array.from(ids) : Uint32Array.from(ids);
}

function sourceStamp(path: string): { path: string; bytes: number; mtimeMs: number } {
  const s = statSync(path);
  return { path, bytes: s.size, mtimeMs: Math.floor(s.mtimeMs) };
}

/** Whether cacheDir holds a preparation of exactly these source files. */
export function isPrepared(cacheDir: string, sources: Record<Split, string>): boolean {
  const metaPath = join(cacheDir, 'meta.json');
  if (!existsSync(metaPath)) return false;
  const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as PreparedMeta;
  return SPLITS.every((s) => {
    const now = sourceStamp(sources[s]);
    const then = meta.sources[s];
    return then && then.bytes === now.bytes && then.mtimeMs === now.mtimeMs && existsSync(join(cacheDir, `${s}.ids.${meta.idType}`));
  });
}

/**
 * Character-level preparation (experiments.md §A1–§A2): vocabulary = union of the code points of
 * all three splits, sorted numerically; ids written little-endian as `<split>.ids.u16` (u32 when
 * the vocabulary needs it), plus vocab.json and meta.json. Every file is written atomically.
 */
export function prepareCharDataset(sources: Record<Split, string>, cacheDir: string): PreparedMeta {
  const texts = SPLITS.map((s) => readSplitText(sources[s]));
  const vocab = buildVocabulary(texts);
  mkdirSync(cacheDir, { recursive: true });
  const idType = vocab.length <= 65536 ? 'u16' : 'u32';
  const tokens = {} as Record<Split, number>;
  SPLITS.forEach((s, i) => {
    const ids = encode(texts[i], vocab, sources[s]);
    tokens[s] = ids.length;
    writeFileAtomic(join(cacheDir, `${s}.ids.${idType}`), new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
  });
  writeFileAtomic(join(cacheDir, 'vocab.json'), JSON.stringify(vocab));
  const meta: PreparedMeta = {
    vocabSize: vocab.length,
    idType,
    tokens,
    sources: { train: sourceStamp(sources.train), valid: sourceStamp(sources.valid), test: sourceStamp(sources.test) },
  };
  writeFileAtomic(join(cacheDir, 'meta.json'), JSON.stringify(meta, null, 2));
  return meta;
}

export interface CharDataset {
  readonly vocab: string[];
  readonly splits: Record<Split, Uint16Array | Uint32Array>;
}

export function readPrepared(cacheDir: string): CharDataset {
  const meta = JSON.parse(readFileSync(join(cacheDir, 'meta.json'), 'utf8')) as PreparedMeta;
  const vocab = JSON.parse(readFileSync(join(cacheDir, 'vocab.json'), 'utf8')) as string[];
  const splits = {} as Record<Split, Uint16Array | Uint32Array>;
  for (const s of SPLITS) {
    const bytes = readFileSync(join(cacheDir, `${s}.ids.${meta.idType}`));
    const copy = new Uint8Array(bytes.byteLength);
    copy.set(bytes);
    splits[s] = meta.idType === 'u16' ? new Uint16Array(copy.buffer) : new Uint32Array(copy.buffer);
  }
  return { vocab, splits };
}
