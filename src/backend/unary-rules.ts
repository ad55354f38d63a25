import { isFormat16, type Format16, type Storage, type UnaryKind } from './backend.ts';

/**
 * The kinds whose kernels also read 16-bit storage (x, and in the backward the incoming
 * gradient) and write their gradient in 16 bits: the activations that sit between products.
 */
export const STORAGE16_UNARY_KINDS: readonly UnaryKind[] = ['copy', 'relu', 'gelu', 'geluTanh'];

/**
 * Storage types of a unary kernel's operands, the same checks on every backend: outputs of the
 * forward kernel may be float32 or 16-bit of any format; 16-bit inputs, and a 16-bit gradient
 * output, only for STORAGE16_UNARY_KINDS and in the read format's format (a 16-bit value read
 * "rounded to its own format" is read as stored).
 */
export function checkUnaryStorage(op: string, kind: UnaryKind, readFormat: Format16 | undefined, sixteenBitAllowed: readonly [string, Storage][], out?: Storage): void {
  for (const [name, storage] of sixteenBitAllowed) {
    if (storage.dtype === 'f32') continue;
    if (!isFormat16(storage.dtype)) throw new TypeError(`${op}: ${name} must be float32 or 16-bit storage, got ${storage.dtype}`);
    if (!STORAGE16_UNARY_KINDS.includes(kind)) throw new TypeError(`${op}: ${name} is ${storage.dtype} storage, which only ${STORAGE16_UNARY_KINDS.join(', ')} take`);
    if (readFormat !== storage.dtype) throw new TypeError(`${op}: ${name} is ${storage.dtype} storage, which needs readFormat ${storage.dtype}, got ${readFormat ?? 'none'}`);
  }
  if (out && out.dtype !== 'f32' && !isFormat16(out.dtype)) throw new TypeError(`${op}: out must be float32 or 16-bit storage, got ${out.dtype}`);
}
