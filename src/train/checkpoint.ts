import { closeSync, existsSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { ReproError } from '../errors.ts';

/**
 * A checkpoint file: the magic bytes, the length of a JSON header, the header (free-form `meta`
 * plus each array's name, dtype, shape and byte offset), then the raw little-endian arrays, each
 * 4-byte aligned. Written to a temporary file and renamed, so a crash mid-write leaves the
 * previous checkpoint intact.
 */
const MAGIC = 'REPROCK1';

export interface SavedArray {
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array;
}

interface HeaderEntry {
  name: string;
  dtype: 'f32' | 'i32';
  shape: number[];
  offset: number;
  length: number;
}

interface Header {
  meta: unknown;
  arrays: HeaderEntry[];
}

export function writeCheckpoint(file: string, meta: unknown, arrays: ReadonlyMap<string, SavedArray>): void {
  const entries: HeaderEntry[] = [];
  let offset = 0;
  for (const [name, { shape, data }] of arrays) {
    entries.push({ name, dtype: data instanceof Int32Array ? 'i32' : 'f32', shape: [...shape], offset, length: data.length });
    offset += data.byteLength;
  }
  const header = Buffer.from(JSON.stringify({ meta, arrays: entries } satisfies Header), 'utf8');
  const padding = (4 - ((MAGIC.length + 4 + header.length) % 4)) % 4;
  const prefix = Buffer.alloc(MAGIC.length + 4);
  prefix.write(MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(header.length + padding, MAGIC.length);

  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, prefix);
    writeSync(fd, Buffer.concat([header, Buffer.alloc(padding, 0x20)]));
    for (const { data } of arrays.values()) writeSync(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
}

export interface LoadedCheckpoint {
  readonly meta: unknown;
  readonly arrays: Map<string, SavedArray>;
}

export function readCheckpoint(file: string): LoadedCheckpoint {
  if (!existsSync(file)) throw new ReproError(`${file}: no checkpoint there`);
  const bytes = readFileSync(file);
  const corrupt = (why: string) => new ReproError(`${file}: not a readable checkpoint (${why})`);
  if (bytes.length < MAGIC.length + 4 || bytes.toString('ascii', 0, MAGIC.length) !== MAGIC) throw corrupt('wrong magic bytes');
  const headerLength = bytes.readUInt32LE(MAGIC.length);
  const dataStart = MAGIC.length + 4 + headerLength;
  if (dataStart > bytes.length) throw corrupt('truncated header');
  let header: Header;
  try {
    header = JSON.parse(bytes.toString('utf8', MAGIC.length + 4, dataStart)) as Header;
  } catch {
    throw corrupt('bad header');
  }
  const arrays = new Map<string, SavedArray>();
  for (const e of header.arrays) {
    const start = dataStart + e.offset;
    if (start + e.length * 4 > bytes.length) throw corrupt(`array ${e.name} is truncated`);
    // copy into a fresh, aligned buffer
    const raw = bytes.subarray(start, start + e.length * 4);
    const buffer = new ArrayBuffer(raw.length);
    new Uint8Array(buffer).set(raw);
    arrays.set(e.name, { shape: e.shape, data: e.dtype === 'i32' ? new Int32Array(buffer) : new Float32Array(buffer) });
  }
  return { meta: header.meta, arrays };
}
