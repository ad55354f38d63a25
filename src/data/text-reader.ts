import { closeSync, openSync, readSync } from 'node:fs';
import { ReproError } from '../errors.ts';

/** 16 MiB: big enough that the per-chunk overhead vanishes, small enough for any machine. */
export const DEFAULT_CHUNK_BYTES = 1 << 24;

/**
 * Reads a UTF-8 file as a sequence of string chunks with Python's universal newlines applied
 * (CRLF and lone CR become LF), without ever holding the whole file: WikiText-103's training
 * split has more characters than V8 allows in one string.
 *
 * Chunks never split a code point (the streaming decoder keeps incomplete UTF-8 sequences) nor a
 * CRLF pair (a trailing CR is held back until the next chunk shows what follows it). A byte-order
 * mark is kept as U+FEFF, as Python's 'utf-8' codec does.
 */
export function* readNormalisedText(path: string, chunkBytes = DEFAULT_CHUNK_BYTES): Generator<string> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new ReproError(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const buffer = new Uint8Array(chunkBytes);
  let heldCarriageReturn = false;
  try {
    for (;;) {
      const n = readSync(fd, buffer, 0, chunkBytes, null);
      let text = n > 0 ? decoder.decode(buffer.subarray(0, n), { stream: true }) : decoder.decode();
      if (heldCarriageReturn) text = `\r${text}`;
      heldCarriageReturn = n > 0 && text.endsWith('\r');
      if (heldCarriageReturn) text = text.slice(0, -1);
      if (text.length > 0) yield text.replace(/\r\n?/g, '\n');
      if (n === 0) return;
    }
  } finally {
    closeSync(fd);
  }
}
