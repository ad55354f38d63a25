import { createServer, type Server } from 'node:http';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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
let cutFirstRequest = true;
let rangeRequests = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = req.url ?? '';
    const range = /bytes=(\d+)-/.exec(req.headers.range ?? '');
    if (url === '/missing') return void res.writeHead(404).end();
    if (url === '/redirect') return void res.writeHead(302, { Location: '/file' }).end();
    if (url === '/no-range') return void res.writeHead(200, { 'Content-Length': body.length }).end(body);
    if (url === '/cut') {
      if (range) {
        rangeRequests++;
        const start = Number(range[1]);
        res.writeHead(206, { 'Content-Length': body.length - start, 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` });
        return void res.end(body.subarray(start));
      }
      res.writeHead(200, { 'Content-Length': body.length });
      if (cutFirstRequest) {
        cutFirstRequest = false;
        res.write(body.subarray(0, 20_000));
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      return void res.end(body);
    }
    if (url === '/file') {
      if (range) {
        const start = Number(range[1]);
        res.writeHead(206, { 'Content-Length': body.length - start });
        return void res.end(body.subarray(start));
      }
      return void res.writeHead(200, { 'Content-Length': body.length }).end(body);
    }
    res.writeHead(500).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

const tmp = () => mkdtempSync(join(tmpdir(), 'repro-dl-'));

describe('download', () => {
  it('fetches, checks size and digests, and renames into place', async () => {
    const dest = join(tmp(), 'f.bin');
    let last = 0;
    await download({ urls: [`${base}/file`], destination: dest, size: body.length, sha256, md5, onProgress: (r) => (last = r) });
    expect(readFileSync(dest).equals(body)).toBe(true);
    expect(last).toBe(body.length);
    expect(existsSync(`${dest}.part`)).toBe(false);
  });

  it('resumes after the connection is cut mid-transfer', async () => {
    const dest = join(tmp(), 'f.bin');
    await download({ urls: [`${base}/cut`], destination: dest, size: body.length, sha256 });
    expect(readFileSync(dest).equals(body)).toBe(true);
    expect(rangeRequests).toBe(1);
  });

  it('resumes a .part left by an earlier run, and restarts when the server ignores Range', async () => {
    const dir = tmp();
    const dest = join(dir, 'f.bin');
    writeFileSync(`${dest}.part`, body.subarray(0, 12_345));
    await download({ urls: [`${base}/file`], destination: dest, size: body.length, sha256 });
    expect(readFileSync(dest).equals(body)).toBe(true);
    const dest2 = join(dir, 'g.bin');
    writeFileSync(`${dest2}.part`, Buffer.from('garbage that must not be kept'));
    await download({ urls: [`${base}/no-range`], destination: dest2, size: body.length, sha256 });
    expect(readFileSync(dest2).equals(body)).toBe(true);
  });

  it('follows redirects and falls back to the next mirror', async () => {
    const dest = join(tmp(), 'f.bin');
    await download({ urls: [`${base}/missing`, `${base}/redirect`], destination: dest, size: body.length });
    expect(readFileSync(dest).equals(body)).toBe(true);
  });

  it('rejects a wrong size or checksum in one line and leaves no file behind', async () => {
    const dest = join(tmp(), 'f.bin');
    await expect(download({ urls: [`${base}/file`], destination: dest, size: body.length - 1 })).rejects.toThrow(/f\.bin: expected 49999 bytes, got 50000/);
    expect(existsSync(dest) || existsSync(`${dest}.part`)).toBe(false);
    const err = await download({ urls: [`${base}/file`], destination: dest, size: body.length, sha256: '0'.repeat(64) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReproError);
    expect(String((err as Error).message)).toMatch(/f\.bin: sha256 .* does not match/);
    expect((err as Error).message).not.toContain('\n');
    expect(existsSync(dest) || existsSync(`${dest}.part`)).toBe(false);
  });

  it('reports every mirror when all fail', async () => {
    const dest = join(tmp(), 'f.bin');
    await expect(download({ urls: [`${base}/missing`], destination: dest })).rejects.toThrow(/HTTP 404/);
  });
});
