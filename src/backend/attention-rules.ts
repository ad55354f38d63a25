import type { AttentionOperand, AttentionShape, Storage } from './backend.ts';

/** Which attention operands are 16-bit storage (see AttentionParams): q, k and v; the output's gradient; q's, k's and v's gradients. */
export interface AttentionStorage {
  readonly qkv16: boolean;
  readonly gradOut16: boolean;
  readonly grads16: boolean;
}

/**
 * The storage types of an attention call, the same checks on every backend: each group (q, k, v;
 * the gradients of q, k, v) is all float32 or all 16-bit storage of the attention's format, as is
 * the output's gradient; out and the row statistics are float32; out16 is 16-bit of the format.
 */
export function attentionStorage(
  op: string,
  p: AttentionShape,
  operands: { readonly qkv: readonly AttentionOperand[]; readonly out: AttentionOperand; readonly out16?: AttentionOperand | null; readonly gradOut?: AttentionOperand; readonly grads?: readonly AttentionOperand[] },
): AttentionStorage {
  const group = (name: string, members: readonly AttentionOperand[]): boolean => {
    const types = new Set(members.map((o) => o.storage.dtype));
    if (types.size > 1) throw new TypeError(`${op}: ${name} must share one storage type, got ${[...types].join(' and ')}`);
    const type = members[0]!.storage.dtype;
    if (type === 'f32') return false;
    if (p.format === undefined || type !== p.format) throw new TypeError(`${op}: ${name} are ${type} storage, which needs attention format ${type}, got ${p.format ?? 'float32'}`);
    return true;
  };
  const float32 = (name: string, s: Storage) => {
    if (s.dtype !== 'f32') throw new TypeError(`${op}: ${name} must be float32 storage, got ${s.dtype}`);
  };
  float32('out', operands.out.storage);
  if (operands.out16 && (p.format === undefined || operands.out16.storage.dtype !== p.format)) {
    throw new TypeError(`${op}: out16 must be ${p.format ?? '16-bit'} storage of the attention's format, got ${operands.out16.storage.dtype}`);
  }
  return {
    qkv16: group('q, k and v', operands.qkv),
    gradOut16: operands.gradOut ? group('gradOut', [operands.gradOut]) : false,
    grads16: operands.grads ? group("q's, k's and v's gradients", operands.grads) : false,
  };
}
