import { ReproError } from '../errors.ts';

/** Character ids: u16 while the vocabulary has at most 65,536 entries, u32 beyond. */
export type Ids = Uint16Array | Uint32Array;

const CODE_POINT_LIMIT = 0x110000;
const U16_VOCAB_LIMIT = 0x10000;

/** Whether ids of a vocabulary of this size need 32 bits. */
export function idTypeFor(vocabSize: number): 'u16' | 'u32' {
  return vocabSize <= U16_VOCAB_LIMIT ? 'u16' : 'u32';
}

/**
 * Calls `visit` with each code point of `text` (experiments.md §A1: a character is a code point,
 * as Python iterates strings; a surrogate pair is one character). Written as an index loop
 * because for..of over half a billion characters is several times slower.
 */
function forEachCodePoint(text: string, visit: (codePoint: number) => void): void {
  for (let i = 0; i < text.length; i++) {
    let cp = text.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        cp = ((cp - 0xd800) << 10) + (low - 0xdc00) + 0x10000;
        i++;
      }
    }
    visit(cp);
  }
}

/** Collects code points across many chunks of text, then lists them in code-point order. */
export class CodePointSet {
  private readonly seen = new Uint8Array(CODE_POINT_LIMIT);

  add(text: string): void {
    const seen = this.seen;
    forEachCodePoint(text, (cp) => {
      seen[cp] = 1;
    });
  }

  /** Sorted numerically by code point (experiments.md §A2); JS's default string sort compares
   * UTF-16 units and would put astral characters before U+E000–U+FFFF. */
  toVocabulary(): string[] {
    const vocab: string[] = [];
    for (let cp = 0; cp < CODE_POINT_LIMIT; cp++) if (this.seen[cp]) vocab.push(String.fromCodePoint(cp));
    return vocab;
  }
}

/** The vocabulary of in-memory texts: every code point that occurs, in code-point order. */
export function buildVocabulary(texts: readonly string[]): string[] {
  const set = new CodePointSet();
  for (const text of texts) set.add(text);
  return set.toVocabulary();
}

function describeCodePoint(cp: number): string {
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')} (${JSON.stringify(String.fromCodePoint(cp))})`;
}

/** Maps code points to ids through a dense table; an unknown character is a hard error (§A2). */
export class CharEncoder {
  private readonly ids = new Int32Array(CODE_POINT_LIMIT).fill(-1);
  readonly idType: 'u16' | 'u32';

  constructor(readonly vocab: readonly string[]) {
    vocab.forEach((ch, id) => {
      const cp = ch.codePointAt(0);
      if (cp === undefined || String.fromCodePoint(cp) !== ch) throw new ReproError(`vocabulary entry ${id} (${JSON.stringify(ch)}) is not a single character`);
      this.ids[cp] = id;
    });
    this.idType = idTypeFor(vocab.length);
  }

  /** Encodes `text` into a fresh array; `what` names the split or file in the error message. */
  encode(text: string, what: string): Ids {
    const out = this.idType === 'u16' ? new Uint16Array(text.length) : new Uint32Array(text.length);
    const ids = this.ids;
    let n = 0;
    forEachCodePoint(text, (cp) => {
      const id = ids[cp];
      if (id < 0) throw new ReproError(`${what}: character ${describeCodePoint(cp)} is not in the vocabulary`);
      out[n++] = id;
    });
    return out.subarray(0, n);
  }
}

/** Encodes one string with a vocabulary (convenience for small texts and tests). */
export function encode(text: string, vocab: readonly string[], what: string): Ids {
  return new CharEncoder(vocab).encode(text, what);
}

/** Turns ids back into text. */
export function decode(ids: ArrayLike<number>, vocab: readonly string[]): string {
  let text = '';
  for (let i = 0; i < ids.length; i++) text += vocab[ids[i]];
  return text;
}
