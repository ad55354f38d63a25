/**
 * CPU twins of the whole-sequence FP32 RHN kernels (src/backend/cuda/kernels/highway-sequence.ts):
 * the same float32 roundings in the same order (Math.fround after every + and ·, tanh and σ in
 * float64), so the CUDA kernels can be held to them.
 */
import type { HighwaySequenceGradParams, HighwaySequenceParams } from '../backend.ts';
import { sigmoid } from './math.ts';
import { f32 } from './storage.ts';

const fr = Math.fround;

export function checkSequenceDims(op: string, p: { batch: number; width: number; length: number }): void {
  for (const [name, v] of Object.entries({ batch: p.batch, width: p.width, length: p.length })) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${op}: ${name} must be a positive integer, got ${v}`);
  }
}

export function highwaySequence(p: HighwaySequenceParams): void {
  checkSequenceDims('highwaySequence', p);
  const { batch: B, width: H, length: L, scale } = p;
  const x = f32(p.projected);
  const w = f32(p.weight);
  const init = f32(p.initial);
  const states = f32(p.states);
  const previous = f32(p.previous);
  const pre = f32(p.pre);
  const h = new Float32Array(H);
  const next = new Float32Array(H);
  const row = new Float32Array(2 * H);
  for (let b = 0; b < B; b++) {
    h.set(init.subarray(b * H, (b + 1) * H));
    for (let t = 0; t < L; t++) {
      const at = b * L + t;
      for (let j = 0; j < 2 * H; j++) {
        let acc = 0;
        for (let k = 0; k < H; k++) acc = fr(acc + fr(h[k] * w[k * 2 * H + j]));
        row[j] = fr(x[at * 2 * H + j] + fr(scale * acc));
      }
      pre.set(row, at * 2 * H);
      previous.set(h, at * H);
      for (let j = 0; j < H; j++) {
        const c = fr(Math.tanh(row[j]));
        const u = fr(sigmoid(row[H + j]));
        const d = fr(c - h[j]);
        next[j] = fr(h[j] + fr(u * d));
      }
      h.set(next);
      states.set(h, at * H);
    }
  }
}

const WARP = 32;

/**
 * Σ_k x[k]·w[offset + k] as one CUDA warp sums it: lane l adds k = l, l + 32, … in order, then
 * the 32 partial sums are combined by xor shuffles with offsets 16, 8, 4, 2, 1 (lane 0's result).
 */
function warpDot(x: Float32Array, w: Float32Array, offset: number, n: number, lanes: Float32Array, swapped: Float32Array): number {
  for (let l = 0; l < WARP; l++) {
    let acc = 0;
    for (let k = l; k < n; k += WARP) acc = fr(acc + fr(x[k]! * w[offset + k]!));
    lanes[l] = acc;
  }
  for (let shift = WARP / 2; shift > 0; shift >>= 1) {
    for (let l = 0; l < WARP; l++) swapped[l] = fr(lanes[l]! + lanes[l ^ shift]!);
    lanes.set(swapped);
  }
  return lanes[0]!;
}

export function highwaySequenceGrad(p: HighwaySequenceGradParams): void {
  checkSequenceDims('highwaySequenceGrad', p);
  const { batch: B, width: H, length: L, gradScale } = p;
  const pre = f32(p.pre);
  const previous = f32(p.previous);
  const w = f32(p.weight);
  const gStates = f32(p.gradStates);
  const gProjected = f32(p.gradProjected);
  const gh = new Float32Array(H);
  const gd = new Float32Array(H);
  const via = new Float32Array(H);
  const gPre = new Float32Array(2 * H);
  const lanes = new Float32Array(WARP);
  const swapped = new Float32Array(WARP);
  for (let b = 0; b < B; b++) {
    for (let t = L - 1; t >= 0; t--) {
      const at = b * L + t;
      for (let j = 0; j < H; j++) {
        let g = gStates[at * H + j];
        if (t < L - 1) g = fr(fr(fr(g + gh[j]) - gd[j]) + via[j]);
        const tc = Math.tanh(pre[at * 2 * H + j]);
        const su = sigmoid(pre[at * 2 * H + H + j]);
        const d = fr(fr(tc) - previous[at * H + j]);
        const gdj = fr(g * fr(su));
        const gu = fr(g * d);
        gPre[j] = fr((1 - tc * tc) * gdj);
        gPre[H + j] = fr(su * (1 - su) * gu);
        gh[j] = g;
        gd[j] = gdj;
      }
      gProjected.set(gPre, at * 2 * H);
      for (let j = 0; j < H; j++) via[j] = fr(gradScale * warpDot(gPre, w, j * 2 * H, 2 * H, lanes, swapped));
    }
    if (p.gradInitial) {
      const gi = f32(p.gradInitial);
      for (let j = 0; j < H; j++) gi[b * H + j] = fr(fr(gh[j] - gd[j]) + via[j]);
    }
  }
}
