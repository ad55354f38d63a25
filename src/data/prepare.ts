import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.ts';
import { SPLITS, idsFileName, stampSource, type PreparedMeta, type Split } from './prepared.ts';
import { DEFAULT_CHUNK_BYTES, readNormalisedText } from './text-reader.ts';
import { CharEncoder, CodePointSet } from './vocabulary.ts';

export { SPLITS, isPrepared, readPrepared, type CharDataset, type PreparedMeta, type Split } from './prepared.ts';

export interface PrepareOptions {
  /** Bytes read per chunk (tests use tiny chunks to exercise the boundaries). */
  readonly chunkBytes?: number;
}

/** Streams one split's ids into `<cacheDir>/<split>.ids.<type>` through a temporary file. */
function writeSplitIds(source: string, split: Split, encoder: CharEncoder, cacheDir: string, chunkBytes: number): number {
  const target = join(cacheDir, idsFileName(split, encoder.idType));
  const tmp = `${target}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  let count = 0;
  try {
    for (const chunk of readNormalisedText(source, chunkBytes)) {
      const ids = encoder.encode(chunk, `${split} split (${source})`);
      writeSync(fd, new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
      count += ids.length;
    }
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, target);
  return count;
}

/**
 * Character-level preparation (experiments.md §A1–§A2) of three UTF-8 files: universal newlines,
 * one id per code point, vocabulary = union of the code points of all three splits in
 * code-point order. Writes `<split>.ids.u16` (little-endian; `.u32` when the vocabulary has more
 * than 65,536 entries), `vocab.json` and, last, `meta.json`. Two streaming passes (vocabulary,
 * then ids) keep memory flat, whatever the size of the training split.
 */
export function prepareCharDataset(sources: Record<Split, string>, cacheDir: string, options: PrepareOptions = {}): PreparedMeta {
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const stamps = { train: stampSource(sources.train), valid: stampSource(sources.valid), test: stampSource(sources.test) };
  const codePoints = new CodePointSet();
  for (const split of SPLITS) for (const chunk of readNormalisedText(sources[split], chunkBytes)) codePoints.add(chunk);
  const encoder = new CharEncoder(codePoints.toVocabulary());
  mkdirSync(cacheDir, { recursive: true });
  // meta.json marks a finished cache: drop it first so an interrupted rewrite is never trusted
  rmSync(join(cacheDir, 'meta.json'), { force: true });
  const staleIdType = encoder.idType === 'u16' ? 'u32' : 'u16';
  for (const split of SPLITS) rmSync(join(cacheDir, idsFileName(split, staleIdType)), { force: true });
  const tokens = {} as Record<Split, number>;
  for (const split of SPLITS) tokens[split] = writeSplitIds(sources[split], split, encoder, cacheDir, chunkBytes);
  writeFileAtomic(join(cacheDir, 'vocab.json'), JSON.stringify(encoder.vocab));
  const meta: PreparedMeta = { vocabSize: encoder.vocab.length, idType: encoder.idType, tokens, sources: stamps };
  writeFileAtomic(join(cacheDir, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
  return meta;
}
