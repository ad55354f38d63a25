import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync, type WriteStream } from 'node:fs';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { basename, dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ReproError } from '../errors.ts';

/** Called as bytes arrive; `total` is the full file size when known. */
export type DownloadProgress = (received: number, total: number | undefined) => void;

export interface DownloadSpec {
  /** Mirrors tried in order; the next one is used when a mirror fails or serves a bad file. */
  readonly urls: readonly string[];
  readonly destination: string;
  /** Expected byte size, checked against the server's announcement and the finished file. */
  readonly size?: number;
  readonly md5?: string;
  readonly sha256?: string;
  readonly onProgress?: DownloadProgress;
  /** Inactivity timeout per request, in ms (default 60 s). */
  readonly timeoutMs?: number;
  /** Transfers per mirror: a cut connection is resumed up to this many times (default 5). */
  readonly attemptsPerMirror?: number;
}

const MAX_REDIRECTS = 5;

/** The connection broke mid-way: the .part file holds a good prefix and the next try resumes. */
class TransferInterrupted extends Error {}
/** The server cannot continue the .part file (416, or a 206 for another offset): start over. */
class RestartNeeded extends Error {}

function request(url: string, headers: Record<string, string>, timeoutMs: number): Promise<IncomingMessage> {
  return new Promise((resolvePromise, reject) => {
    const get = url.startsWith('https:') ? httpsGet : httpGet;
    const req = get(url, { headers }, resolvePromise);
    req.setTimeout(timeoutMs, () => req.destroy(new TransferInterrupted(`no data for ${timeoutMs / 1000} s`)));
    req.on('error', reject);
  });
}

/** GET with an optional Range, following redirects; returns a 200 or 206 response. */
async function open(url: string, offset: number, timeoutMs: number): Promise<IncomingMessage> {
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await request(current, offset > 0 ? { Range: `bytes=${offset}-` } : {}, timeoutMs);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      current = new URL(res.headers.location, current).toString();
      continue;
    }
    if (status === 200 || status === 206) return res;
    res.resume();
    if (status === 416 && offset > 0) throw new RestartNeeded(`HTTP 416 for bytes=${offset}-`);
    throw new Error(`HTTP ${status}${current === url ? '' : ` from ${current}`}`);
  }
  throw new Error(`more than ${MAX_REDIRECTS} redirects`);
}

/** Start offset and full size from a 206's Content-Range ("bytes 100-199/200"). */
function parseContentRange(header: string | undefined): { start: number; total: number | undefined } | null {
  const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header?.trim() ?? '');
  return m ? { start: Number(m[1]), total: m[2] === '*' ? undefined : Number(m[2]) } : null;
}

function waitClosed(out: WriteStream): Promise<void> {
  return out.closed ? Promise.resolve() : new Promise((r) => out.once('close', () => r()));
}

/** Streams a response into the .part file (appending to `already` bytes when `append`). */
async function receive(res: IncomingMessage, part: string, append: boolean, already: number, total: number | undefined, onProgress?: DownloadProgress): Promise<void> {
  const out = createWriteStream(part, { flags: append ? 'a' : 'w' });
  let received = append ? already : 0;
  res.on('data', (chunk: Buffer) => {
    received += chunk.length;
    onProgress?.(received, total);
  });
  try {
    await pipeline(res, out);
  } catch (err) {
    // the next attempt measures the .part to resume from, so every queued write must have landed
    await waitClosed(out);
    // pipeline destroys both sides with the same error, so ask the response whether it broke
    if (res.complete && !res.errored) throw err;
    throw new TransferInterrupted(`connection lost after ${received} bytes (${(err as Error).message})`);
  }
  if (!res.complete) throw new TransferInterrupted(`connection closed after ${received} bytes`);
}

/** One transfer from one mirror: resumes the .part when the server honours Range, else restarts. */
async function transfer(url: string, part: string, spec: DownloadSpec): Promise<void> {
  let already = existsSync(part) ? statSync(part).size : 0;
  if (spec.size !== undefined && already === spec.size) return;
  if (spec.size !== undefined && already > spec.size) {
    rmSync(part);
    already = 0;
  }
  const res = await open(url, already, spec.timeoutMs ?? 60_000);
  let append = false;
  let total: number | undefined;
  const length = Number(res.headers['content-length'] ?? NaN);
  if (res.statusCode === 206 && already > 0) {
    const range = parseContentRange(res.headers['content-range']);
    if (range && range.start !== already) {
      res.resume();
      throw new RestartNeeded(`asked for bytes ${already}-, got ${res.headers['content-range']}`);
    }
    append = true;
    total = range?.total ?? (Number.isFinite(length) ? already + length : undefined);
  } else {
    total = Number.isFinite(length) ? length : undefined;
  }
  if (spec.size !== undefined && total !== undefined && total !== spec.size) {
    res.resume();
    throw new Error(`server announces ${total} bytes, expected ${spec.size}`);
  }
  await receive(res, part, append, already, total ?? spec.size, spec.onProgress);
}

async function fetchFromMirror(url: string, part: string, spec: DownloadSpec): Promise<void> {
  const attempts = spec.attemptsPerMirror ?? 5;
  let last: Error | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      await transfer(url, part, spec);
      return;
    } catch (err) {
      if (err instanceof RestartNeeded) rmSync(part, { force: true });
      else if (!(err instanceof TransferInterrupted)) throw err;
      last = err;
    }
  }
  throw new Error(`gave up after ${attempts} attempts: ${last?.message}`);
}

async function digest(path: string, algorithm: 'md5' | 'sha256'): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Checks size and digests of the finished .part; a bad file is deleted and described. */
async function verify(part: string, spec: DownloadSpec): Promise<void> {
  const problems: string[] = [];
  const actual = statSync(part).size;
  if (spec.size !== undefined && actual !== spec.size) problems.push(`expected ${spec.size} bytes, got ${actual}`);
  for (const algorithm of ['md5', 'sha256'] as const) {
    const expected = spec[algorithm]?.toLowerCase();
    if (!expected || problems.length > 0) continue;
    const found = await digest(part, algorithm);
    if (found !== expected) problems.push(`${algorithm} ${found}, expected ${expected}`);
  }
  if (problems.length > 0) {
    rmSync(part);
    throw new Error(`${problems.join(', ')} (download deleted)`);
  }
}

/**
 * Downloads `urls` (mirrors, in order) to `destination` through `destination.part`: resumes a
 * partial file with an HTTP Range request (restarting when the server ignores it), retries a cut
 * transfer, checks the size and the digests given, and renames only a verified file into place.
 * When no mirror yields a good file, throws one ReproError naming the file and each mirror's
 * problem; a file that failed its checks is deleted.
 */
export async function download(spec: DownloadSpec): Promise<void> {
  const { destination } = spec;
  mkdirSync(dirname(destination), { recursive: true });
  const part = `${destination}.part`;
  const problems: string[] = [];
  for (const url of spec.urls) {
    try {
      await fetchFromMirror(url, part, spec);
      await verify(part, spec);
      renameSync(part, destination);
      return;
    } catch (err) {
      problems.push(`${url}: ${(err as Error).message}`);
    }
  }
  const resumable = existsSync(part) ? `; ${statSync(part).size} bytes kept in ${basename(part)}, the next try resumes` : '';
  throw new ReproError(`${basename(destination)}: download failed (${problems.join('; ') || 'no mirrors'})${resumable}`);
}
