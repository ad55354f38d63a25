/**
 * CPU twins of the fused attention kernels (src/backend/cuda/kernels/attention.ts): the scores
 * of one query row at a time, the softmax through its log-sum-exp, and the backward from P
 * recomputed with that log-sum-exp. Dot products and sums are taken in float64 and rounded to
 * float32 once; the CUDA kernels sum in float32 in another order, so they are held to these
 * within a tolerance, not bit for bit.
 * With a 16-bit `format` (see AttentionShape.format) q, k, v and the output's gradient are read
 * rounded, and P and logitGradScale·dS are rounded to the format before they multiply anything.
 */
import type { Format16, AttentionGradParams, AttentionOperand, AttentionParams, AttentionShape } from '../backend.ts';
import { readRounded, roundTo16Bits } from './quantise.ts';
import { f32, floats } from './storage.ts';
import { attentionStorage } from '../attention-rules.ts';

const pair = new Float32Array(2);

/** Two values rounded to the format. */
function roundPair(a: number, b: number, format: Format16): [number, number] {
  pair[0] = a;
  pair[1] = b;
  roundTo16Bits(pair, format);
  return [pair[0], pair[1]];
}

/** Element offset of row (b, h, s) of an operand. */
function rowOffset(o: AttentionOperand, b: number, h: number, s: number): number {
  return o.offset + b * o.strides[0] + h * o.strides[1] + s * o.strides[2];
}

function dot(x: Float32Array, xAt: number, y: Float32Array, yAt: number, n: number): number {
  let sum = 0;
  for (let d = 0; d < n; d++) sum += x[xAt + d]! * y[yAt + d]!;
  return sum;
}

/** Keys that query i sees: all of them, or j ≤ i under the causal mask. */
function visibleKeys(p: AttentionShape, i: number): number {
  return p.causal ? Math.min(i + 1, p.keys) : p.keys;
}

export function attention(p: AttentionParams): void {
  attentionStorage('attention', p, { qkv: [p.q, p.k, p.v], out: p.out, out16: p.out16 });
  const q = readRounded(floats(p.q.storage), p.format);
  const k = readRounded(floats(p.k.storage), p.format);
  const v = readRounded(floats(p.v.storage), p.format);
  const out = f32(p.out.storage);
  const out16 = p.out16 ? floats(p.out16.storage) : null;
  const lse = f32(p.logSumExp);
  const D = p.headDim;
  const scores = new Float64Array(p.keys);
  const weights = new Float64Array(p.keys);
  const rounded = new Float32Array(p.keys);
  const acc = new Float64Array(D);
  for (let b = 0; b < p.batch; b++) {
    for (let h = 0; h < p.heads; h++) {
      for (let i = 0; i < p.queries; i++) {
        const qi = rowOffset(p.q, b, h, i);
        const n = visibleKeys(p, i);
        let max = -Infinity;
        for (let j = 0; j < n; j++) {
          scores[j] = p.temperature * dot(q, qi, k, rowOffset(p.k, b, h, j), D);
          max = Math.max(max, scores[j]!);
        }
        let total = 0;
        for (let j = 0; j < n; j++) {
          weights[j] = Math.exp(scores[j]! - max);
          total += weights[j]!;
        }
        // float32 divides by the total once at the end; the 16-bit path rounds each probability.
        if (p.format) {
          for (let j = 0; j < n; j++) rounded[j] = weights[j]! / total;
          roundTo16Bits(rounded.subarray(0, n), p.format);
          for (let j = 0; j < n; j++) weights[j] = rounded[j]!;
        }
        acc.fill(0);
        for (let j = 0; j < n; j++) {
          const vj = rowOffset(p.v, b, h, j);
          for (let d = 0; d < D; d++) acc[d] += weights[j]! * v[vj + d]!;
        }
        const norm = p.format ? 1 : total;
        const oi = rowOffset(p.out, b, h, i);
        for (let d = 0; d < D; d++) out[oi + d] = (p.outputScale * acc[d]!) / norm;
        if (out16 && p.out16 && p.format) {
          const at = rowOffset(p.out16, b, h, i);
          out16.set(out.subarray(oi, oi + D), at);
          roundTo16Bits(out16.subarray(at, at + D), p.format);
        }
        lse[(b * p.heads + h) * p.queries + i] = max + Math.log(total);
      }
    }
  }
}

export function attentionGrad(p: AttentionGradParams): void {
  const storage = attentionStorage('attentionGrad', p, { qkv: [p.q, p.k, p.v], out: p.out, gradOut: p.gradOut, grads: [p.gradQ, p.gradK, p.gradV] });
  const q = readRounded(floats(p.q.storage), p.format);
  const k = readRounded(floats(p.k.storage), p.format);
  const v = readRounded(floats(p.v.storage), p.format);
  const out = f32(p.out.storage);
  const g = readRounded(floats(p.gradOut.storage), p.format);
  const lse = f32(p.logSumExp);
  const delta = f32(p.delta);
  const gq = floats(p.gradQ.storage);
  const gk = floats(p.gradK.storage);
  const gv = floats(p.gradV.storage);
  const D = p.headDim;
  const S = p.queries;
  const K = p.keys;
  const dq = new Float64Array(S * D);
  const dk = new Float64Array(K * D);
  const dv = new Float64Array(K * D);
  for (let b = 0; b < p.batch; b++) {
    for (let h = 0; h < p.heads; h++) {
      dq.fill(0);
      dk.fill(0);
      dv.fill(0);
      const row = (b * p.heads + h) * S;
      for (let i = 0; i < S; i++) {
        const gi = rowOffset(p.gradOut, b, h, i);
        delta[row + i] = (p.probsGradScale * dot(g, gi, out, rowOffset(p.out, b, h, i), D)) / p.outputScale;
      }
      for (let i = 0; i < S; i++) {
        const qi = rowOffset(p.q, b, h, i);
        const gi = rowOffset(p.gradOut, b, h, i);
        const n = visibleKeys(p, i);
        for (let j = 0; j < n; j++) {
          const kj = rowOffset(p.k, b, h, j);
          const vj = rowOffset(p.v, b, h, j);
          const prob = Math.exp(p.temperature * dot(q, qi, k, kj, D) - lse[row + i]!);
          const ds = prob * (p.probsGradScale * dot(g, gi, v, vj, D) - delta[row + i]!);
          // 16-bit: the products take round(P) and round(logitGradScale·dS) (the scale moves inside).
          const [pv, pd] = p.format ? roundPair(prob, p.logitGradScale * ds, p.format) : [prob, ds];
          for (let d = 0; d < D; d++) {
            dq[i * D + d] += pd * k[kj + d]!;
            dk[j * D + d] += pd * q[qi + d]!;
            dv[j * D + d] += pv * g[gi + d]!;
          }
        }
      }
      const logitScale = p.format ? 1 : p.logitGradScale;
      for (let i = 0; i < S; i++) {
        const at = rowOffset(p.gradQ, b, h, i);
        for (let d = 0; d < D; d++) gq[at + d] = logitScale * dq[i * D + d]!;
      }
      for (let j = 0; j < K; j++) {
        const atK = rowOffset(p.gradK, b, h, j);
        const atV = rowOffset(p.gradV, b, h, j);
        for (let d = 0; d < D; d++) {
          gk[atK + d] = logitScale * dk[j * D + d]!;
          gv[atV + d] = p.valueGradScale * dv[j * D + d]!;
        }
      }
    }
  }
  // 16-bit gradients hold the float32 results rounded (elsewhere their storages hold values already on the grid).
  if (storage.grads16 && p.format) for (const target of new Set([gq, gk, gv])) roundTo16Bits(target, p.format);
}
