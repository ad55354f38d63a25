import { isFormat16, type Format16, type GemmParams } from './backend.ts';

/** The 16-bit format a product rounds its operands to as it reads them (GemmParams.roundInputs), or null. */
export function operandRounding(p: Pick<GemmParams, 'inputFormat' | 'roundInputs'>): Format16 | null {
  if (!p.roundInputs) return null;
  if (p.inputFormat === 'fp16' || p.inputFormat === 'bf16') return p.inputFormat;
  throw new RangeError(`gemm: roundInputs needs inputFormat fp16 or bf16, got ${p.inputFormat ?? 'fp32'}`);
}

/**
 * A, B and C are float32, or 16-bit storage of the product's own input format; a 16-bit C is
 * written (beta 0), never read.
 */
export function checkOperandTypes(p: Pick<GemmParams, 'a' | 'b' | 'c' | 'inputFormat' | 'alpha' | 'beta' | 'k'>): void {
  for (const [name, storage] of [['A', p.a], ['B', p.b], ['C', p.c]] as const) {
    if (storage.dtype === 'f32') continue;
    if (!isFormat16(storage.dtype)) throw new TypeError(`gemm: ${name} must be float32 or 16-bit storage, got ${storage.dtype}`);
    if (p.inputFormat !== storage.dtype) throw new TypeError(`gemm: ${name} is ${storage.dtype} storage, which a ${p.inputFormat ?? 'fp32'} product cannot ${name === 'C' ? 'write' : 'read'}`);
  }
  if (p.c.dtype !== 'f32' && p.beta !== 0) throw new TypeError(`gemm: a 16-bit C is written over (beta 0), got beta ${p.beta}`);
  if (p.c.dtype !== 'f32' && (p.k === 0 || p.alpha === 0)) throw new TypeError('gemm: a 16-bit C is written by a product (k > 0, alpha ≠ 0)');
}
