import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCharDataset } from '../../src/data/charlm.ts';
import { extractMembers } from '../../src/data/unzip.ts';
import { decode } from '../../src/data/vocabulary.ts';
import { downloadWikitext103, wikitextArchive, wikitextCacheDir, wikitextSources } from '../../src/data/wikitext.ts';

/** Made once with python3's zipfile; see test/fixtures/data/README.md. */
const fixture = new URL('../fixtures/data/wikitext-mini.zip', import.meta.url).pathname;
const zip = readFileSync(fixture);
let server: Server;
let url = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/wikitext-103-raw-v1.zip') return void res.writeHead(200, { 'Content-Length': zip.length }).end(zip);
    const junk = Buffer.alloc(zip.length, 7); // right size, not a zip
    res.writeHead(200, { 'Content-Length': junk.length }).end(junk);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('WikiText-103 download', () => {
  it('downloads, extracts the three splits, deletes the archive and prepares ids (CRLF → LF, code points)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'repro-wt-'));
    const meta = await downloadWikitext103(dataDir, { urls: [`${url}/wikitext-103-raw-v1.zip`], size: zip.length });
    expect(existsSync(wikitextArchive(dataDir))).toBe(false);
    expect(readFileSync(wikitextSources(dataDir).train, 'utf8')).toBe(' = Title = \r\n\r\n The quick brown fox . \r\n😀 is astral \r');
    const data = await loadCharDataset({ kind: 'wikitext103' }, dataDir);
    expect(decode(data.splits.train, data.vocab)).toBe(' = Title = \n\n The quick brown fox . \n😀 is astral \n');
    expect(decode(data.splits.valid, data.vocab)).toBe(' = Valid = \n\n Zebra é\n');
    expect(decode(data.splits.test, data.vocab)).toBe(' = Test = \n\n ~ tilde\n');
    expect(meta.vocabSize).toBe(data.vocab.length);
    expect(data.vocab.at(-1)).toBe('😀');
    expect(statSync(join(wikitextCacheDir(dataDir), 'train.ids.u16')).size).toBe(2 * data.splits.train.length);
  });

  it('deletes an archive of the right size that is not a zip, and says to run the download again', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'repro-wt-'));
    const run = downloadWikitext103(dataDir, { urls: [`${url}/junk.zip`], size: zip.length });
    await expect(run).rejects.toThrow(/wikitext-103-raw-v1\.zip: not a readable zip archive .*the archive was deleted, run `repro data download wikitext103` again/);
    expect(existsSync(wikitextArchive(dataDir))).toBe(false);
  });
});

describe('extractMembers', () => {
  it('extracts named members only, and names a missing member or a damaged archive', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'repro-zip-'));
    await extractMembers(fixture, { 'wikitext-103-raw/wiki.test.raw': join(dir, 'sub', 't.txt') });
    expect(readFileSync(join(dir, 'sub', 't.txt'), 'utf8')).toBe(' = Test = \n\n ~ tilde\n');
    await expect(extractMembers(fixture, { 'nope.txt': join(dir, 'x') })).rejects.toThrow(/member nope\.txt not found in the archive/);
    writeFileSync(join(dir, 'broken.zip'), zip.subarray(0, zip.length - 30));
    await expect(extractMembers(join(dir, 'broken.zip'), {})).rejects.toThrow(/broken\.zip: not a readable zip archive/);
  });
});
