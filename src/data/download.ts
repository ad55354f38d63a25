import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { basename, dirname } from 'node:path';
import { ReproError } from '../errors.ts';

export interface DownloadSpec {
  /** Mirrors tried in order; the next one is used when a transfer fails. */
  readonly urls: readonly string[];
  readonly destination: string;
  /** Expected byte size (checked before the final rename). */
  readonly size?: number;
  readonly md5?: string;
  readonly sha256?: string;
  readonly onProgress?: (received: number, total: number | undefined) => void;
  /** Per-request inactivity timeout in ms. */
  readonly timeoutMs?: number;
}

const MAX_REDIRECTS = 5;

function request(url: string, headers: Record<string, string>, timeoutMs: number): Promise<IncomingMessage> {
  return new Promise((resolvePromise, reject) => {
    const get = url.startsWith('https:') ? httpsGet : httpGet;
    const req = get(url, { headers }, resolvePromise);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no data for ${timeoutMs / 1000} s`)));
    req.on('error', reject);
  });
}

/** Follows redirects; returns the final response (status 200 or 206) or throws. */
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
    if (status === 416 && offset > 0) throw new RangeNotSatisfiable();
    throw new Error(`HTTP ${status} from ${current}`);
  }
  throw new Error(`too many redirects from ${url}`);
}

class RangeNotSatisfiable extends Error {}

/** Streams one response into the .part file, appending when the server honoured the range. */
function receive(res: IncomingMessage, part: string, append: boolean, already: number, spec: DownloadSpec): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const out = createWriteStream(part, { flags: append ? 'a' : 'w' });
    const lengthHeader = Number(res.headers['content-length']);
    const total = Number.isFinite(lengthHeader) ? lengthHeader + (append ? already : 0) : spec.size;
    let received = append ? already : 0;
    res.on('data', (chunk: Buffer) => {
      received += chunk.length;
      spec.onProgress?.(received, total);
    });
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('connection closed mid-transfer')));
    out.on('error', reject);
    out.on('finish', () => {
      if (!res.complete) reject(new Error('connection closed mid-transfer'));
      else resolvePromise();
    });
    res.pipe(out);
  });
}

async function digest(path: string, algorithm: 'md5' | 'sha256'): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Downloads to `destination` through `destination.part`: resumes a partial file with an HTTP
 * Range request (restarting when the server ignores it), retries a broken transfer once per
 * mirror, checks size and digests, and renames only a verified file into place. A file that
 * fails the checks is deleted and reported in one line naming it.
 */
export async function download(spec: DownloadSpec): Promise<void> {
  const { destination } = spec;
  mkdirSync(dirname(destination), { recursive: true });
  const part = `${destination}.part`;
  const timeoutMs = spec.timeoutMs ?? 60_000;
  const problems: string[] = [];
  for (const url of spec.urls) {
    for (let attempt = 0; attempt < 3; attempt++) {
      const already = existsSync(part) ? statSync(part).size : 0;
      try {
        if (spec.size !== undefined && already === spec.size) break;
        const res = await open(url, already, timeoutMs);
        const append = already > 0 && res.statusCode === 206;
        await receive(res, part, append, already, spec);
        break;
      } catch (err) {
        if (err instanceof RangeNotSatisfiable) {
          unlinkSync(part);
          continue;
        }
        problems.push(`${url}: ${(err as Error).message}`);
        // a cut connection leaves a usable .part: retry (resuming) before the next mirror
        if (!/mid-transfer|no data/.test((err as Error).message)) break;
      }
    }
    if (existsSync(part) && (spec.size === undefined || statSync(part).size >= spec.size)) {
      await verify(part, spec);
      renameSync(part, destination);
      return;
    }
  }
  throw new ReproError(`download of ${basename(destination)} failed: ${problems.join('; ') || 'incomplete transfer'}`);
}

async function verify(part: string, spec: DownloadSpec): Promise<void> {
  const name = basename(spec.destination);
  const actual = statSync(part).size;
  const fail = (what: string) => {
    unlinkSync(part);
    throw new ReproError(`${name}: ${what}; the corrupt download was deleted, run the command again`);
  };
  if (spec.size !== undefined && actual !== spec.size) fail(`expected ${spec.size} bytes, got ${actual}`);
  if (spec.md5) {
    const md5 = await digest(part, 'md5');
    if (md5 !== spec.md5.toLowerCase()) fail(`md5 ${md5} does not match the expected ${spec.md5}`);
  }
  if (spec.sha256) {
    const sha = await digest(part, 'sha256');
    if (sha !== spec.sha256.toLowerCase()) fail(`sha256 ${sha} does not match the expected ${spec.sha256}`);
  }
}
