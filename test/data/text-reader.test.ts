import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readNormalisedText } from '../../src/data/text-reader.ts';

const dir = mkdtempSync(join(tmpdir(), 'repro-text-'));
let files = 0;
function file(bytes: Buffer | string): string {
  const path = join(dir, `f${files++}.txt`);
  writeFileSync(path, bytes);
  return path;
}

/** What Python's text mode (utf-8, universal newlines) reads from these bytes. */
const pythonRead = (bytes: Buffer) => bytes.toString('utf8').replace(/\r\n?/g, '\n');

describe('readNormalisedText', () => {
  const tricky = Buffer.from('\uFEFFa\r\nb\rc\r\r\nd é😀 ｚ\r\n\r', 'utf8');

  it('reads like Python text mode at every chunk size (CRLF, multi-byte and astral characters split across chunks)', () => {
    const path = file(tricky);
    for (let chunk = 1; chunk <= tricky.length + 1; chunk++) {
      const chunks = [...readNormalisedText(path, chunk)];
      expect(chunks.join(''), `chunk ${chunk}`).toBe(pythonRead(tricky));
      for (const c of chunks) {
        expect(/^[\uDC00-\uDFFF]/.test(c) || /[\uD800-\uDBFF]$/.test(c)).toBe(false);
        expect(c).not.toContain('\r');
      }
    }
  });

  it('keeps a byte-order mark as U+FEFF and turns invalid UTF-8 into U+FFFD', () => {
    expect([...readNormalisedText(file(tricky))].join('').codePointAt(0)).toBe(0xfeff);
    expect([...readNormalisedText(file(Buffer.from([0x61, 0xff, 0x62])), 2)].join('')).toBe('a\uFFFDb');
  });

  it('yields nothing for an empty file and names a missing one', () => {
    expect([...readNormalisedText(file(''))]).toEqual([]);
    expect(() => [...readNormalisedText(join(dir, 'absent.txt'))]).toThrow(/absent\.txt: cannot read \(ENOENT\)/);
  });
});
