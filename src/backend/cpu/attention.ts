/**
 * CPU twins of the fused attention kernels (src/backend/cuda/kernels/attention.ts): the scores
 * of one query row at a time, the softmax through its log-sum-exp, and the backward from P
 * recomputed with that log-sum-exp. Dot products and sums are taken in float64 and rounded to
 * float32 once; the CUDA kernels sum in float32 in another order, so they are held to these
 * within a tolerance, not bit for bit.
 */
import type { AttentionGradParams, AttentionOperand, AttentionParams, AttentionShape } from '../backend.ts';
import { f32 } from './storage.ts';

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
  const q = f32(p.q.storage);
  const k = f32(p.k.storage);
  const v = f32(p.v.storage);
  const out = f32(p.out.storage);
  const lse = f32(p.logSumExp);
  const D = p.headDim;
  const scores = new Float64Array(p.keys);
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
        acc.fill(0);
        for (let j = 0; j < n; j++) {
          const e = Math.exp(scores[j]! - max);
          total += e;
          const vj = rowOffset(p.v, b, h, j);
          for (let d = 0; d < D; d++) acc[d] += e * v[vj + d]!;
        }
        const oi = rowOffset(p.out, b, h, i);
        for (let d = 0; d < D; d++) out[oi + d] = (p.outputScale * acc[d]!) / total;
        lse[(b * p.heads + h) * p.queries + i] = max + Math.log(total);
      }
    }
  }
}

export function attentionGrad(p: AttentionGradParams): void {
  const q = f32(p.q.storage);
  const k = f32(p.k.storage);
  const v = f32(p.v.storage);
  const out = f32(p.out.storage);
  const g = f32(p.gradOut.storage);
  const lse = f32(p.logSumExp);
  const delta = f32(p.delta);
  const gq = f32(p.gradQ.storage);
  const gk = f32(p.gradK.storage);
  const gv = f32(p.gradV.storage);
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
          for (let d = 0; d < D; d++) {
            dq[i * D + d] += ds * k[kj + d]!;
            dk[j * D + d] += ds * q[qi + d]!;
            dv[j * D + d] += prob * g[gi + d]!;
          }
        }
      }
      for (let i = 0; i < S; i++) {
        const at = rowOffset(p.gradQ, b, h, i);
        for (let d = 0; d < D; d++) gq[at + d] = p.logitGradScale * dq[i * D + d]!;
      }
      for (let j = 0; j < K; j++) {
        const atK = rowOffset(p.gradK, b, h, j);
        const atV = rowOffset(p.gradV, b, h, j);
        for (let d = 0; d < D; d++) {
          gk[atK + d] = p.logitGradScale * dk[j * D + d]!;
          gv[atV + d] = p.valueGradScale * dv[j * D + d]!;
        }
      }
    }
  }
}
