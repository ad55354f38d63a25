import { isFormat16, type Copy16, type Format16 } from './backend.ts';

/** The format of a copies16 call's targets, with the checks every backend makes. */
export function copies16Format(pairs: readonly Copy16[]): Format16 | null {
  let format: Format16 | null = null;
  pairs.forEach((p, i) => {
    if (p.src.dtype !== 'f32') throw new TypeError(`copies16: pairs[${i}].src must be float32 storage, got ${p.src.dtype}`);
    const dtype = p.dst.dtype;
    if (!isFormat16(dtype)) throw new TypeError(`copies16: pairs[${i}].dst must be 16-bit storage, got ${dtype}`);
    if (format !== null && dtype !== format) throw new TypeError(`copies16: every target must share one format, got ${format} and ${dtype}`);
    format = dtype;
    if (!Number.isInteger(p.n) || p.n < 0 || p.n > p.src.size || p.n > p.dst.size) throw new RangeError(`copies16: pairs[${i}].n = ${p.n} does not fit its storages`);
  });
  // The copies may run at once: no target written twice, or read as another copy's source.
  const sources = new Set(pairs.map((p) => p.src));
  const targets = new Set<Copy16['dst']>();
  for (const { dst } of pairs) {
    if (targets.has(dst) || sources.has(dst)) throw new Error('copies16: a target storage appears twice, or is also a source');
    targets.add(dst);
  }
  return format;
}
