/**
 * CPU twins of the whole-sequence RHN kernels (the highway_sequence kernels of
 * src/backend/cuda/kernels/highway.ts): the same float32 roundings in the same order (Math.fround
 * after every + and ·, tanh and σ in float64) and the same activation rounding, a timestep's
 * rounding point applied to that timestep's whole [B, 2H] or [B, H] tensor on its stream, so the
 * CUDA kernels can be held to them.
 */
import {
  SEQUENCE_BACKWARD_POINTS,
  SEQUENCE_FORWARD_POINTS,
  type HighwaySequenceGradParams,
  type HighwaySequenceParams,
  type SequenceRounding,
  type SequenceStreams,
} from '../backend.ts';
import { sigmoid } from './math.ts';
import { streamRounder } from './highway-kernels.ts';
import { f32 } from './storage.ts';

const fr = Math.fround;
const WARP = 32;

/** Rounds a timestep's tensor in place at rounding point `point` of timestep `t`. */
type Round = (values: Float32Array, t: number, point: number) => void;

function rounder(round: SequenceRounding | null, streams: SequenceStreams | null, points: number): Round {
  const R = streamRounder('highwaySequence', round, streams);
  const first = streams?.first ?? 0;
  return (values, t, point) => R(values, first + points * t + point);
}

function checkDims(op: string, p: { batch: number; width: number; length: number }): void {
  for (const [name, v] of Object.entries({ batch: p.batch, width: p.width, length: p.length })) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${op}: ${name} must be a positive integer, got ${v}`);
  }
}

/** c = R(tanh(pre_c)), u = R(σ(pre_u)), d = R(c − h) of timestep t for every row (forward points 2, 3, 4). */
function gates(pre: Float32Array, previous: Float32Array, t: number, B: number, L: number, H: number, R: Round, c: Float32Array, u: Float32Array, d: Float32Array): void {
  for (let b = 0; b < B; b++) {
    const at = b * L + t;
    for (let j = 0; j < H; j++) {
      c[b * H + j] = Math.tanh(pre[at * 2 * H + j]!);
      u[b * H + j] = sigmoid(pre[at * 2 * H + H + j]!);
    }
  }
  R(c, t, 2);
  R(u, t, 3);
  for (let b = 0; b < B; b++) for (let j = 0; j < H; j++) d[b * H + j] = c[b * H + j]! - previous[(b * L + t) * H + j]!;
  R(d, t, 4);
}

export function highwaySequence(p: HighwaySequenceParams): void {
  checkDims('highwaySequence', p);
  const { batch: B, width: H, length: L, scale } = p;
  const R = rounder(p.round, p.round?.stochastic ?? null, SEQUENCE_FORWARD_POINTS);
  const x = f32(p.projected);
  const w = f32(p.weight);
  const states = f32(p.states);
  const previous = f32(p.previous);
  const pre = f32(p.pre);
  const h = f32(p.initial).slice(0, B * H);
  const r = new Float32Array(B * 2 * H);
  const c = new Float32Array(B * H);
  const u = new Float32Array(B * H);
  const d = new Float32Array(B * H);
  const s = new Float32Array(B * H);
  for (let t = 0; t < L; t++) {
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < 2 * H; j++) {
        let acc = 0;
        for (let k = 0; k < H; k++) acc = fr(acc + fr(h[b * H + k]! * w[k * 2 * H + j]!));
        r[b * 2 * H + j] = scale * acc;
      }
    }
    R(r, t, 0);
    const step = new Float32Array(B * 2 * H);
    for (let b = 0; b < B; b++) for (let j = 0; j < 2 * H; j++) step[b * 2 * H + j] = x[(b * L + t) * 2 * H + j]! + r[b * 2 * H + j]!;
    R(step, t, 1);
    for (let b = 0; b < B; b++) {
      pre.set(step.subarray(b * 2 * H, (b + 1) * 2 * H), (b * L + t) * 2 * H);
      previous.set(h.subarray(b * H, (b + 1) * H), (b * L + t) * H);
    }
    gates(pre, previous, t, B, L, H, R, c, u, d);
    for (let i = 0; i < B * H; i++) s[i] = u[i]! * d[i]!;
    R(s, t, 5);
    for (let i = 0; i < B * H; i++) h[i] = h[i]! + s[i]!;
    R(h, t, 6);
    for (let b = 0; b < B; b++) states.set(h.subarray(b * H, (b + 1) * H), (b * L + t) * H);
  }
}

/**
 * Σ_k x[k]·w[offset + k] as one CUDA warp sums it: lane l adds k = l, l + 32, … in order, then
 * the 32 partial sums are combined by xor shuffles with offsets 16, 8, 4, 2, 1 (lane 0's result).
 */
function warpDot(x: Float32Array, xOffset: number, w: Float32Array, wOffset: number, n: number, lanes: Float32Array, swapped: Float32Array): number {
  for (let l = 0; l < WARP; l++) {
    let acc = 0;
    for (let k = l; k < n; k += WARP) acc = fr(acc + fr(x[xOffset + k]! * w[wOffset + k]!));
    lanes[l] = acc;
  }
  for (let shift = WARP / 2; shift > 0; shift >>= 1) {
    for (let l = 0; l < WARP; l++) swapped[l] = fr(lanes[l]! + lanes[l ^ shift]!);
    lanes.set(swapped);
  }
  return lanes[0]!;
}

export function highwaySequenceGrad(p: HighwaySequenceGradParams): void {
  checkDims('highwaySequenceGrad', p);
  const { batch: B, width: H, length: L, gradScale } = p;
  const forward = rounder(p.round, p.round?.stochastic ?? null, SEQUENCE_FORWARD_POINTS);
  const R = rounder(p.round, p.round?.stochastic ? p.gradStreams : null, SEQUENCE_BACKWARD_POINTS);
  if (p.round?.stochastic && !p.gradStreams) throw new Error('highwaySequenceGrad: stochastic rounding needs the backward streams');
  const pre = f32(p.pre);
  const previous = f32(p.previous);
  const w = f32(p.weight);
  const gStates = f32(p.gradStates);
  const gProjected = f32(p.gradProjected);
  const n = B * H;
  const c = new Float32Array(n);
  const u = new Float32Array(n);
  const d = new Float32Array(n);
  const gh = new Float32Array(n);
  const gs = new Float32Array(n);
  const gd = new Float32Array(n);
  const gu = new Float32Array(n);
  const gc = new Float32Array(n);
  const gPre = new Float32Array(2 * n);
  const via = new Float32Array(n);
  const lanes = new Float32Array(WARP);
  const swapped = new Float32Array(WARP);
  for (let t = L - 1; t >= 0; t--) {
    gates(pre, previous, t, B, L, H, forward, c, u, d);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < H; j++) {
        const i = b * H + j;
        let g = gStates[(b * L + t) * H + j]!;
        if (t < L - 1) g = fr(fr(fr(g + gh[i]!) - gd[i]!) + via[i]!);
        gh[i] = g;
      }
    }
    R(gh, t, 0);
    gs.set(gh);
    R(gs, t, 1);
    for (let i = 0; i < n; i++) gd[i] = gs[i]! * u[i]!;
    R(gd, t, 2);
    for (let i = 0; i < n; i++) gu[i] = gs[i]! * d[i]!;
    R(gu, t, 3);
    gc.set(gd);
    R(gc, t, 4);
    for (let b = 0; b < B; b++) {
      const at = b * L + t;
      for (let j = 0; j < H; j++) {
        const tc = Math.tanh(pre[at * 2 * H + j]!);
        const su = sigmoid(pre[at * 2 * H + H + j]!);
        gPre[b * 2 * H + j] = (1 - tc * tc) * gc[b * H + j]!;
        gPre[b * 2 * H + H + j] = su * (1 - su) * gu[b * H + j]!;
      }
    }
    R(gPre, t, 5);
    for (let b = 0; b < B; b++) {
      gProjected.set(gPre.subarray(b * 2 * H, (b + 1) * 2 * H), (b * L + t) * 2 * H);
      for (let j = 0; j < H; j++) via[b * H + j] = fr(gradScale * warpDot(gPre, b * 2 * H, w, j * 2 * H, 2 * H, lanes, swapped));
    }
  }
  if (p.gradInitial) {
    const gi = f32(p.gradInitial);
    for (let i = 0; i < n; i++) gi[i] = fr(fr(gh[i]! - gd[i]!) + via[i]!);
  }
}
