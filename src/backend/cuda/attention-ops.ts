/** Host wrappers of the fused attention kernels: float32 (kernels/attention.ts) and 16-bit on tensor cores (kernels/attention-tc.ts). */
import type { AttentionGradParams, AttentionOperand, AttentionParams, AttentionShape, Storage } from '../backend.ts';
import { ATTENTION_PADDED_DIMS, ATTENTION_THREADS, attentionGeometry, attentionModule, attentionSharedBytes } from './kernels/attention.ts';
import { ATTENTION_TC_ROWS, ATTENTION_TC_THREADS, attentionTcModule, attentionTcPaddedDim } from './kernels/attention-tc.ts';
import { writeWideWords, type Kernel, type ParamKind } from './launch.ts';
import { addressAt, type CudaRuntime } from './runtime.ts';
import { checkCount } from './strided.ts';
import { attentionStorage, type AttentionStorage } from '../attention-rules.ts';

/** The Operand struct: a float pointer and three int64 strides. */
const OPERAND = 's8' as const;
const FORWARD_KINDS: readonly ParamKind[] = [OPERAND, OPERAND, OPERAND, OPERAND, 'p', 'i', 'i', 'i', 'i', 'f', 'f', 'i'];
/** The tensor-core forward kernel also takes out16 after out. */
const TC_FORWARD_KINDS: readonly ParamKind[] = [OPERAND, ...FORWARD_KINDS];
const GRAD_Q_KINDS: readonly ParamKind[] = [OPERAND, OPERAND, OPERAND, OPERAND, OPERAND, OPERAND, 'p', 'p', 'i', 'i', 'i', 'i', 'f', 'f', 'i', 'f', 'f'];
const GRAD_KV_KINDS: readonly ParamKind[] = [OPERAND, OPERAND, OPERAND, OPERAND, OPERAND, OPERAND, 'p', 'p', 'i', 'i', 'i', 'i', 'f', 'i', 'f', 'f', 'f'];

function paddedDim(op: string, headDim: number): (typeof ATTENTION_PADDED_DIMS)[number] {
  const padded = ATTENTION_PADDED_DIMS.find((p) => headDim <= p);
  if (padded === undefined) throw new RangeError(`${op}: head size ${headDim} is above the CUDA kernels' ${ATTENTION_PADDED_DIMS.at(-1)}`);
  return padded;
}

function checkShape(op: string, p: AttentionShape): void {
  for (const [name, v] of Object.entries({ batch: p.batch, heads: p.heads, queries: p.queries, keys: p.keys, headDim: p.headDim })) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${op}: ${name} must be a positive integer, got ${v}`);
  }
  if (p.causal && p.keys !== p.queries) throw new RangeError(`${op}: causal needs as many keys as queries`);
  if (p.batch * p.heads > 65535) throw new RangeError(`${op}: batch·heads ${p.batch * p.heads} is above the grid's 65535`);
}

/** The Operand struct of a bounds-checked [B, H, rows, D] operand. */
function operand(op: string, name: string, o: AttentionOperand, p: AttentionShape, rows: number): Int32Array {
  const [sb, sh, ss] = o.strides;
  if ([sb, sh, ss, o.offset].some((v) => !Number.isInteger(v) || v < 0)) throw new RangeError(`${op}: ${name} needs non-negative integer strides and offset`);
  const reach = (p.batch - 1) * sb + (p.heads - 1) * sh + (rows - 1) * ss + p.headDim;
  checkCount(op, name, o.storage, reach, o.offset);
  const words = new Int32Array(8);
  writeWideWords(words, [addressAt(o.storage, o.offset, op), sb, sh, ss]);
  return words;
}

function rowStats(op: string, name: string, storage: Storage, p: AttentionShape): number {
  checkCount(op, name, storage, p.batch * p.heads * p.queries);
  if (storage.dtype !== 'f32') throw new TypeError(`${op}: ${name} must be float32 storage`);
  return addressAt(storage, 0, op);
}

/**
 * The 16-bit tensor-core kernel (kernels/attention-tc.ts) for these operand types, checked against
 * the device; `read16` are the 16-bit operands it reads, which decide between 8-byte and scalar loads.
 */
function tensorCoreKernel(
  rt: CudaRuntime, op: string, p: AttentionShape, storage: AttentionStorage, read16: readonly AttentionOperand[], name: 'forward' | 'grad_q' | 'grad_kv', kinds: readonly ParamKind[],
): Kernel {
  const format = p.format!;
  const [major] = rt.device.info.computeCapability;
  if (major < 8) throw new RangeError(`${op}: ${format} attention needs tensor cores of compute capability 8.0 or newer, this GPU has ${rt.device.info.computeCapability.join('.')}`);
  // 8-byte loads: every row of every 16-bit operand starts on a multiple of 4 codes (allocations are 256-byte aligned).
  const vec16 = p.headDim % 4 === 0 && read16.every((o) => [o.offset, ...o.strides].every((x) => x % 4 === 0));
  return rt.kernel(attentionTcModule(attentionTcPaddedDim(p.headDim), format, storage, vec16), `attention_tc_${name}`, kinds);
}

/** An Operand struct with a null base: an absent optional operand. */
const ABSENT_OPERAND = new Int32Array(8);

/** The kernel, allowed the dynamic shared memory it needs. */
function attentionKernel(rt: CudaRuntime, paddedDim: (typeof ATTENTION_PADDED_DIMS)[number], name: 'forward' | 'grad_q' | 'grad_kv', kinds: readonly ParamKind[]): { kernel: Kernel; shared: number } {
  const kernel = rt.kernel(attentionModule(paddedDim), `attention_${name}`, kinds);
  const shared = attentionSharedBytes(paddedDim, name);
  kernel.allowDynamicShared(shared);
  return { kernel, shared };
}

export function attention(rt: CudaRuntime, p: AttentionParams): void {
  const op = 'attention';
  checkShape(op, p);
  const padded = paddedDim(op, p.headDim);
  const storage = attentionStorage(op, p, { qkv: [p.q, p.k, p.v], out: p.out, out16: p.out16 });
  const out = operand(op, 'out', p.out, p, p.queries);
  const tail = [
    rowStats(op, 'logSumExp', p.logSumExp, p),
    p.heads,
    p.queries,
    p.keys,
    p.headDim,
    p.temperature,
    p.outputScale,
    p.causal ? 1 : 0,
  ];
  const qkv = [operand(op, 'q', p.q, p, p.queries), operand(op, 'k', p.k, p, p.keys), operand(op, 'v', p.v, p, p.keys)];
  if (p.format) {
    const out16 = p.out16 ? operand(op, 'out16', p.out16, p, p.queries) : ABSENT_OPERAND;
    const kernel = tensorCoreKernel(rt, op, p, storage, storage.qkv16 ? [p.q, p.k, p.v] : [], 'forward', TC_FORWARD_KINDS);
    kernel.launch(rt.stream, Math.ceil(p.queries / ATTENTION_TC_ROWS), p.batch * p.heads, ATTENTION_TC_THREADS, 0, [...qkv, out, out16, ...tail]);
    return;
  }
  const args = [...qkv, out, ...tail];
  const { kernel, shared } = attentionKernel(rt, padded, 'forward', FORWARD_KINDS);
  kernel.launch(rt.stream, Math.ceil(p.queries / attentionGeometry().blockRows), p.batch * p.heads, ATTENTION_THREADS, shared, args);
}

export function attentionGrad(rt: CudaRuntime, p: AttentionGradParams): void {
  const op = 'attentionGrad';
  checkShape(op, p);
  const padded = paddedDim(op, p.headDim);
  const storage = attentionStorage(op, p, { qkv: [p.q, p.k, p.v], out: p.out, gradOut: p.gradOut, grads: [p.gradQ, p.gradK, p.gradV] });
  const q = operand(op, 'q', p.q, p, p.queries);
  const k = operand(op, 'k', p.k, p, p.keys);
  const v = operand(op, 'v', p.v, p, p.keys);
  const gradOut = operand(op, 'gradOut', p.gradOut, p, p.queries);
  const lse = rowStats(op, 'logSumExp', p.logSumExp, p);
  const delta = rowStats(op, 'delta', p.delta, p);
  const dims = [p.heads, p.queries, p.keys, p.headDim, p.temperature];
  const causal = p.causal ? 1 : 0;
  const gradQArgs = [
    q, k, v, operand(op, 'out', p.out, p, p.queries), gradOut, operand(op, 'gradQ', p.gradQ, p, p.queries), lse, delta,
    ...dims, p.outputScale, causal, p.probsGradScale, p.logitGradScale,
  ];
  const gradKvArgs = [
    q, k, v, gradOut, operand(op, 'gradK', p.gradK, p, p.keys), operand(op, 'gradV', p.gradV, p, p.keys), lse, delta,
    ...dims, causal, p.probsGradScale, p.logitGradScale, p.valueGradScale,
  ];
  // grad_q writes delta, which grad_kv reads: same stream, in this order.
  if (p.format) {
    const blocks = (rows: number) => Math.ceil(rows / ATTENTION_TC_ROWS);
    const read16 = [...(storage.qkv16 ? [p.q, p.k, p.v] : []), ...(storage.gradOut16 ? [p.gradOut] : [])];
    tensorCoreKernel(rt, op, p, storage, read16, 'grad_q', GRAD_Q_KINDS).launch(rt.stream, blocks(p.queries), p.batch * p.heads, ATTENTION_TC_THREADS, 0, gradQArgs);
    tensorCoreKernel(rt, op, p, storage, read16, 'grad_kv', GRAD_KV_KINDS).launch(rt.stream, blocks(p.keys), p.batch * p.heads, ATTENTION_TC_THREADS, 0, gradKvArgs);
    return;
  }
  const gradQ = attentionKernel(rt, padded, 'grad_q', GRAD_Q_KINDS);
  gradQ.kernel.launch(rt.stream, Math.ceil(p.queries / attentionGeometry().blockRows), p.batch * p.heads, ATTENTION_THREADS, gradQ.shared, gradQArgs);
  const gradKv = attentionKernel(rt, padded, 'grad_kv', GRAD_KV_KINDS);
  gradKv.kernel.launch(rt.stream, Math.ceil(p.keys / attentionGeometry().blockRows), p.batch * p.heads, ATTENTION_THREADS, gradKv.shared, gradKvArgs);
}
