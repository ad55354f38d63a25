import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { download } from '../../src/data/download.ts';
import { ReproError } from '../../src/errors.ts';

const body = Buffer.from(Array.from({ length: 50_000 }, (_, i) => (i * 7919) % 251));
const sha256 = createHash('sha256').update(body).digest('hex');
const md5 = createHash('md5').update(body).digest('hex');
let server: Server;
let base = '';
/** Requests per path, with the Range header each carried. */
const log: { url: string; range: string | undefined }[] = [];
const requests = (url: string) => log.filter((r) => r.url === url);

function sendFrom(res: ServerResponse, start: number, { cutAfter }: { cutAfter?: number } = {}) {
  const headers: Record<string, string | number> = { 'Content-Length': body.length - start };
  if (start > 0) headers['Content-Range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
  res.writeHead(start > 0 ? 206 : 200, headers);
  if (cutAfter === undefined) return void res.end(body.subarray(start));
  // send part of the body, then drop the connection as a failing network would
  res.write(body.subarray(start, start + cutAfter));
  setTimeout(() => res.socket?.destroy(), 20);
}

function handle(req: IncomingMessage, res: ServerResponse) {
  const url = req.url ?? '';
  log.push({ url, range: req.headers.range });
  const rangeStart = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
  switch (url) {
    case '/file':
      return sendFrom(res, rangeStart);
    case '/missing':
      return void res.writeHead(404).end();
    case '/redirect':
      return void res.writeHead(302, { Location: '/redirect2' }).end();
    case '/redirect2':
      return void res.writeHead(301, { Location: `${base}/file` }).end();
    case '/no-range':
      return void res.writeHead(200, { 'Content-Length': body.length }).end(body);
    case '/cut-once':
      return sendFrom(res, rangeStart, requests(url).length === 1 ? { cutAfter: 20_000 } : {});
    case '/always-cut':
      return sendFrom(res, rangeStart, { cutAfter: 7_000 });
    case '/wrong-offset': // answers 206 for a range other than the one asked for
      if (rangeStart === 0) return sendFrom(res, 0);
      res.writeHead(206, { 'Content-Length': body.length - 100, 'Content-Range': `bytes 100-${body.length - 1}/${body.length}` });
      return void res.end(body.subarray(100));
    case '/chunked-short': // no Content-Length, so only the final check can see the missing byte
      res.writeHead(200);
      return void res.end(body.subarray(0, body.length - 1));
    case '/corrupt': {
      const bad = Buffer.from(body);
      bad[123] ^= 1;
      return void res.writeHead(200, { 'Content-Length': bad.length }).end(bad);
    }
    default:
      res.writeHead(500).end();
  }
}

beforeAll(async () => {
  server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

const tmp = () => mkdtempSync(join(tmpdir(), 'repro-dl-'));

async function failure(promise: Promise<unknown>): Promise<ReproError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ReproError);
  expect((err as Error).message).not.toContain('\n');
  return err as ReproError;
}

describe('download', () => {
  it('fetches, reports progress, checks size and digests, and renames into place', async () => {
    const dest = join(tmp(), 'f.bin');
    const progress: [number, number | undefined][] = [];
    await download({ urls: [`${base}/file`], destination: dest, size: body.length, sha256, md5, onProgress: (r, t) => progress.push([r, t]) });
    expect(readFileSync(dest).equals(body)).toBe(true);
    expect(progress.at(-1)).toEqual([body.length, body.length]);
    expect(progress.every(([r], i) => i === 0 || r > progress[i - 1][0])).toBe(true);
    expect(existsSync(`${dest}.part`)).toBe(false);
  });

  it('resumes with a Range request after the connection is cut mid-transfer', async () => {
    const dest = join(tmp(), 'f.bin');
    await download({ urls: [`${base}/cut-once`], destination: dest, size: body.length, sha256 });
    expect(readFileSync(dest).equals(body)).toBe(true);
    const ranges = requests('/cut-once').map((r) => r.range);
    expect(ranges).toHaveLength(2);
    expect(ranges[0]).toBeUndefined();
    expect(Number(/bytes=(\d+)-/.exec(ranges[1] ?? '')?.[1])).toBeGreaterThan(0);
  });

  it('resumes a .part left by an earlier run', async () => {
    const dest = join(tmp(), 'f.bin');
    writeFileSync(`${dest}.part`, body.subarray(0, 12_345));
    const before = requests('/file').length;
    await download({ urls: [`${base}/file`], destination: dest, size: body.length, sha256 });
    expect(readFileSync(dest).equals(body)).toBe(true);
    expect(requests('/file').slice(before).map((r) => r.range)).toEqual(['bytes=12345-']);
  });

  it('restarts from zero when the server ignores Range or answers for another offset', async () => {
    const dir = tmp();
    for (const path of ['/no-range', '/wrong-offset']) {
      const dest = join(dir, `${path.slice(1)}.bin`);
      writeFileSync(`${dest}.part`, Buffer.from('garbage that must not be kept'));
      await download({ urls: [`${base}${path}`], destination: dest, size: body.length, sha256 });
      expect(readFileSync(dest).equals(body)).toBe(true);
    }
  });

  it('follows redirects (relative and absolute) and falls back from a 404 to the next mirror', async () => {
    const dest = join(tmp(), 'f.bin');
    await download({ urls: [`${base}/missing`, `${base}/redirect`], destination: dest, size: body.length, sha256 });
    expect(readFileSync(dest).equals(body)).toBe(true);
  });

  it('falls back to the next mirror when one serves a corrupt file', async () => {
    const dest = join(tmp(), 'f.bin');
    await download({ urls: [`${base}/corrupt`, `${base}/file`], destination: dest, size: body.length, sha256 });
    expect(readFileSync(dest).equals(body)).toBe(true);
  });

  it('rejects a wrong size, announced or found at the end, naming the file, and leaves nothing behind', async () => {
    const dest = join(tmp(), 'f.bin');
    const announced = await failure(download({ urls: [`${base}/file`], destination: dest, size: body.length - 1 }));
    expect(announced.message).toMatch(/^f\.bin: download failed .*server announces 50000 bytes, expected 49999/);
    const found = await failure(download({ urls: [`${base}/chunked-short`], destination: dest, size: body.length }));
    expect(found.message).toMatch(/^f\.bin: download failed .*expected 50000 bytes, got 49999 \(download deleted\)/);
    expect(existsSync(dest) || existsSync(`${dest}.part`)).toBe(false);
  });

  it('rejects a wrong checksum with expected and actual digests, and leaves nothing behind', async () => {
    const dest = join(tmp(), 'f.bin');
    const badSha = await failure(download({ urls: [`${base}/file`], destination: dest, size: body.length, sha256: '0'.repeat(64) }));
    expect(badSha.message).toContain(`sha256 ${sha256}, expected ${'0'.repeat(64)}`);
    const badMd5 = await failure(download({ urls: [`${base}/corrupt`], destination: dest, md5 }));
    expect(badMd5.message).toMatch(new RegExp(`f\\.bin: .*md5 [0-9a-f]{32}, expected ${md5}`));
    expect(existsSync(dest) || existsSync(`${dest}.part`)).toBe(false);
  });

  it('never renames a partial file into place, even without an expected size', async () => {
    const dest = join(tmp(), 'f.bin');
    const err = await failure(download({ urls: [`${base}/always-cut`], destination: dest, attemptsPerMirror: 3 }));
    expect(err.message).toMatch(/gave up after 3 attempts.*bytes kept in f\.bin\.part, the next try resumes/);
    expect(existsSync(dest)).toBe(false);
    expect(statSync(`${dest}.part`).size).toBe(21_000); // three cut transfers of 7,000 bytes, appended
    expect(readFileSync(`${dest}.part`).equals(body.subarray(0, 21_000))).toBe(true);
  });

  it('reports every mirror when all fail', async () => {
    const dest = join(tmp(), 'f.bin');
    const err = await failure(download({ urls: [`${base}/missing`, `${base}/nowhere`], destination: dest }));
    expect(err.message).toContain(`${base}/missing: HTTP 404`);
    expect(err.message).toContain(`${base}/nowhere: HTTP 500`);
  });
});
