import type { Format16, GemmParams } from './backend.ts';

/** The 16-bit format a product rounds its operands to as it reads them (GemmParams.roundInputs), or null. */
export function operandRounding(p: Pick<GemmParams, 'inputFormat' | 'roundInputs'>): Format16 | null {
  if (!p.roundInputs) return null;
  if (p.inputFormat === 'fp16' || p.inputFormat === 'bf16') return p.inputFormat;
  throw new RangeError(`gemm: roundInputs needs inputFormat fp16 or bf16, got ${p.inputFormat ?? 'fp32'}`);
}
