import { mkdirSync, mkdtempSync, readFileSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCharDataset, locateDataset, prepareDataset, textCacheDir } from '../../src/data/charlm.ts';
import { prepareCharDataset } from '../../src/data/prepare.ts';
import { isPrepared, readPrepared } from '../../src/data/prepared.ts';
import { buildVocabulary, decode, encode } from '../../src/data/vocabulary.ts';

const tmp = (tag: string) => mkdtempSync(join(tmpdir(), `repro-${tag}-`));

function textDir(splits: { train: string | Buffer; valid: string | Buffer; test: string | Buffer }): string {
  const dir = tmp('text');
  for (const [name, text] of Object.entries(splits)) writeFileSync(join(dir, `${name}.txt`), text);
  return dir;
}

describe('vocabulary (experiments.md §A2)', () => {
  it('is ordered by code point, astral characters last', () => {
    const vocab = buildVocabulary(['b😀a', 'ｚ\u{1F600}é']);
    expect(vocab).toEqual(['a', 'b', 'é', 'ｚ', '😀']);
    // JS's default sort compares UTF-16 units and would put 😀 (D83D…) before ｚ (FF5A)
    expect([...vocab].sort()).not.toEqual(vocab);
    expect(Array.from(encode('a😀b', vocab, 'x'))).toEqual([0, 4, 1]);
    expect(decode(encode('a😀b', vocab, 'x'), vocab)).toBe('a😀b');
  });

  it('has no unknown-character handling: a missing character names the split', () => {
    expect(() => encode('aq', ['a'], 'valid split (v.txt)')).toThrow(/^valid split \(v\.txt\): character U\+0071 \("q"\) is not in the vocabulary$/);
  });
});

describe('prepareCharDataset', () => {
  it('unions all three splits, counts code points, and writes u16 little-endian ids', () => {
    const dir = textDir({ train: 'ab\r\nb', valid: 'c😀', test: '\uFEFFa' });
    const cache = join(tmp('cache'), 'c');
    const meta = prepareCharDataset(locateDataset({ kind: 'text', path: dir }).sources, cache, { chunkBytes: 3 });
    const vocab = JSON.parse(readFileSync(join(cache, 'vocab.json'), 'utf8')) as string[];
    expect(vocab).toEqual(['\n', 'a', 'b', 'c', '\uFEFF', '😀']);
    expect(meta).toMatchObject({ vocabSize: 6, idType: 'u16', tokens: { train: 4, valid: 2, test: 2 } });
    expect([...readFileSync(join(cache, 'train.ids.u16'))]).toEqual([1, 0, 2, 0, 0, 0, 2, 0]);
    expect(meta.sources.valid.bytes).toBe(5);
  });

  it('switches to u32 ids when the vocabulary has more than 65,536 characters', () => {
    const many = Array.from({ length: 70_000 }, (_, i) => String.fromCodePoint(0x20000 + i)).join('');
    const dir = textDir({ train: many, valid: 'x', test: 'y' });
    const cache = join(tmp('cache'), 'c');
    const meta = prepareCharDataset(locateDataset({ kind: 'text', path: dir }).sources, cache);
    expect(meta.idType).toBe('u32');
    expect(statSync(join(cache, 'train.ids.u32')).size).toBe(4 * 70_000);
    const data = readPrepared(cache);
    expect(data.splits.train).toBeInstanceOf(Uint32Array);
    expect(data.vocab.length).toBe(70_002);
    expect(data.splits.train[69_999]).toBe(70_001); // 'x' and 'y' sort first
    expect(decode(data.splits.train, data.vocab)).toBe(many);
  });
});

describe('loadCharDataset', () => {
  it('prepares a text directory once, reuses the cache, and prepares again when a source changes', async () => {
    const dir = textDir({ train: 'hello world\n', valid: 'hold\n', test: 'word\n' });
    const dataDir = tmp('data');
    const first = await prepareDataset({ kind: 'text', path: dir }, dataDir);
    expect(first.rebuilt).toBe(true);
    expect(first.location.cacheDir).toBe(textCacheDir(dir, dataDir));
    expect(first.location.cacheDir.startsWith(join(dataDir, 'cache', 'text-'))).toBe(true);
    expect((await prepareDataset({ kind: 'text', path: dir }, dataDir)).rebuilt).toBe(false);
    const data = await loadCharDataset({ kind: 'text', path: dir }, dataDir);
    expect(decode(data.splits.valid, data.vocab)).toBe('hold\n');

    writeFileSync(join(dir, 'test.txt'), 'worldz\n');
    utimesSync(join(dir, 'test.txt'), new Date(), new Date(Date.now() + 5_000));
    expect(isPrepared(first.location.cacheDir, first.location.sources)).toBe(false);
    const changed = await loadCharDataset({ kind: 'text', path: dir }, dataDir);
    expect(changed.vocab).toContain('z');
    expect(decode(changed.splits.test, changed.vocab)).toBe('worldz\n');
  });

  it('does not trust a truncated ids file', async () => {
    const dir = textDir({ train: 'abcabc', valid: 'a', test: 'b' });
    const dataDir = tmp('data');
    const { location } = await prepareDataset({ kind: 'text', path: dir }, dataDir);
    truncateSync(join(location.cacheDir, 'train.ids.u16'), 4);
    expect(() => readPrepared(location.cacheDir)).toThrow(/train\.ids\.u16: expected 12 bytes, found 4; run `repro data prepare` again/);
    expect((await loadCharDataset({ kind: 'text', path: dir }, dataDir)).splits.train.length).toBe(6);
  });

  it('names what is missing: a directory, a split file, the WikiText download', async () => {
    const dataDir = tmp('data');
    await expect(loadCharDataset({ kind: 'text', path: join(dataDir, 'nope') }, dataDir)).rejects.toThrow(/nope: not a directory/);
    await expect(loadCharDataset({ kind: 'text' }, dataDir)).rejects.toThrow(/data\.path: a text dataset needs a directory/);
    const partial = tmp('partial');
    mkdirSync(partial, { recursive: true });
    writeFileSync(join(partial, 'train.txt'), 'a');
    await expect(loadCharDataset({ kind: 'text', path: partial }, dataDir)).rejects.toThrow(/valid\.txt: missing/);
    await expect(loadCharDataset({ kind: 'wikitext103' }, dataDir)).rejects.toThrow(/wikitext103 is not in .*run `repro data download wikitext103`/);
  });

  it('prepares the shipped sample into <dataDir>/cache/sample, once', async () => {
    const dataDir = tmp('sample');
    const a = await loadCharDataset({ kind: 'sample' }, dataDir);
    const metaPath = join(dataDir, 'cache', 'sample', 'meta.json');
    const stamp = statSync(metaPath).mtimeMs;
    const b = await loadCharDataset({ kind: 'sample' }, dataDir);
    expect(statSync(metaPath).mtimeMs).toBe(stamp);
    expect(b.vocab).toEqual(a.vocab);
    expect(a.splits.train.length).toBeGreaterThan(250_000);
    expect(decode(a.splits.valid.subarray(0, 20), a.vocab)).toBe(' = Robert Boulter = ');
  });
});
