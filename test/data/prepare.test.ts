import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildVocabulary, encode } from '../../src/data/prepare.ts';
import { downloadWikitext103, wikitextCacheDir } from '../../src/data/wikitext.ts';
import { loadCharDataset } from '../../src/data/charlm.ts';
import { extractMembers } from '../../src/data/unzip.ts';

const fixture = new URL('../fixtures/data/wikitext-mini.zip', import.meta.url).pathname;

describe('character preparation', () => {
  it('orders the vocabulary by code point, astral characters last', () => {
    const vocab = buildVocabulary(['b😀a', 'ｚ\u{1F600}é']);
    expect(vocab).toEqual(['a', 'b', 'é', 'ｚ', '😀']);
    // JS's default sort compares UTF-16 units and would put 😀 (D83D…) before ｚ (FF5A)
    expect([...vocab].sort()).not.toEqual(vocab);
    expect(Array.from(encode('a😀b', vocab, 'x'))).toEqual([0, 4, 1]);
    expect(() => encode('q', vocab, 'valid.txt')).toThrow(/valid\.txt: character U\+0071 is not in the vocabulary/);
  });

  it('downloads, extracts and prepares WikiText from a local server (CRLF → LF, code points)', async () => {
    const zip = readFileSync(fixture);
    const server = createServer((_req, res) => res.writeHead(200, { 'Content-Length': zip.length }).end(zip));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const dataDir = mkdtempSync(join(tmpdir(), 'repro-wt-'));
    try {
      const meta = await downloadWikitext103(dataDir, { urls: [`http://127.0.0.1:${port}/wikitext-103-raw-v1.zip`], size: zip.length });
      const data = loadCharDataset({ kind: 'wikitext103' }, dataDir);
      const decode = (ids: ArrayLike<number>) => Array.from(ids, (i) => data.vocab[i]).join('');
      expect(decode(data.splits.train)).toBe(' = Title = \n\n The quick brown fox . \n😀 is astral \n');
      expect(decode(data.splits.valid)).toBe(' = Valid = \n\n Zebra é\n');
      expect(meta.vocabSize).toBe(data.vocab.length);
      expect(data.vocab.at(-1)).toBe('😀');
      expect(statSync(join(wikitextCacheDir(dataDir), 'train.ids.u16')).size).toBe(2 * data.splits.train.length);
    } finally {
      server.close();
    }
  });

  it('a missing zip member or a damaged archive is one line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'repro-zip-'));
    await expect(extractMembers(fixture, { 'nope.txt': join(dir, 'x') })).rejects.toThrow(/member nope\.txt not found/);
    await expect(extractMembers(join(dir, 'x'), {})).rejects.toThrow(/not a readable zip archive/);
  });

  it('a missing WikiText download tells the user what to run', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'repro-none-'));
    expect(() => loadCharDataset({ kind: 'wikitext103' }, dataDir)).toThrow(/repro data download wikitext103/);
  });

  it('prepares the shipped sample once and reuses the cache', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'repro-sample-'));
    const a = loadCharDataset({ kind: 'sample' }, dataDir);
    const metaPath = join(dataDir, 'cache', 'sample', 'meta.json');
    const stamp = statSync(metaPath).mtimeMs;
    const b = loadCharDataset({ kind: 'sample' }, dataDir);
    expect(statSync(metaPath).mtimeMs).toBe(stamp);
    expect(b.vocab).toEqual(a.vocab);
    expect(a.splits.train.length).toBeGreaterThan(250_000);
  });
});
