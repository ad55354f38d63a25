/**
 * CPU twins of the fused Recurrent Highway Network step. They reproduce the unfused op chain
 * (add, tanh, sigmoid, sub, mul, add, each followed by a quantise) bit for bit: every arithmetic
 * result is stored as float32 exactly where an op wrote its output tensor, the transcendental
 * functions and derivatives are the unary kernels' float64 formulas, and rounding is the quantise
 * kernel's: nearest, or stochastic with rounding point k of a call on its stream k (element i of
 * the point's tensor on stream element i, as a quantise of that whole tensor).
 */
import type { HighwayRounding, HighwayStepGradParams, HighwayStepParams, QuantiseFormat, QuantiseOptions, RoundingStreams, Storage } from '../backend.ts';
import { quantise } from '../../formats/quantise.ts';
import { sigmoid } from './math.ts';
import { f32, i32 } from './storage.ts';

/** Rounds a rounding point's whole tensor in place. */
type Round = (values: Float32Array, point: number) => void;

/**
 * Rounds a whole tensor in place as one quantise call would: nearest, or stochastic with element
 * i on word i of Philox stream `stream` (ignored for nearest). Shared by the fused RHN twins,
 * which differ only in how a rounding point maps to a stream.
 */
export type StreamRound = (values: Float32Array, stream: number) => void;

export function streamRounder(
  op: string,
  round: { readonly format: QuantiseFormat; readonly overflow: QuantiseOptions['overflow']; readonly viaFp16: boolean; readonly stochastic: unknown } | null,
  streams: { readonly seed: number; readonly epoch: Storage | null } | null,
): StreamRound {
  if (!round) return () => {};
  const { format, overflow, viaFp16 } = round;
  if (!round.stochastic) {
    const options = { rounding: 'nearest', overflow, viaFp16 } as const;
    return (values) => quantise(values, values, format, options);
  }
  if (!streams) throw new Error(`${op}: stochastic rounding needs the rounding points' streams`);
  const { seed, epoch } = streams;
  const e = epoch ? i32(epoch)[0]! >>> 0 : 0;
  return (values, stream) => quantise(values, values, format, { rounding: 'stochastic', overflow, viaFp16, seed, stream, offset: 0, epoch: e });
}

function rounder(round: HighwayRounding | null, streams: RoundingStreams | null): Round {
  const R = streamRounder('highway', round, streams);
  return (values, point) => R(values, streams?.streams[point] ?? 0);
}

function checkDims(op: string, p: { batch: number; width: number; length: number; step: number }): void {
  for (const [name, v] of Object.entries({ batch: p.batch, width: p.width, length: p.length, step: p.step })) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${op}: ${name} must be a non-negative integer, got ${v}`);
  }
  if (p.step >= p.length) throw new RangeError(`${op}: step ${p.step} is outside a sequence of length ${p.length}`);
}

/** c = R(tanh(pre_c)), u = R(σ(pre_u)), d = R(c − state) for the n = B·H elements (the forward's points 1, 2, 3). */
function gates(pre: Float32Array, st: Float32Array, B: number, H: number, R: Round): { c: Float32Array; u: Float32Array; d: Float32Array } {
  const n = B * H;
  const c = new Float32Array(n);
  const u = new Float32Array(n);
  for (let b = 0, i = 0; b < B; b++) {
    const r = 2 * H * b;
    for (let j = 0; j < H; j++, i++) {
      c[i] = Math.tanh(pre[r + j]);
      u[i] = sigmoid(pre[r + H + j]);
    }
  }
  R(c, 1);
  R(u, 2);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = c[i] - st[i];
  R(d, 3);
  return { c, u, d };
}

export function highwayStep(p: HighwayStepParams): void {
  checkDims('highwayStep', p);
  const { batch: B, width: H, length: L, step } = p;
  const n = B * H;
  const R = rounder(p.round, p.round?.stochastic ?? null);
  const x = f32(p.projected);
  const rec = f32(p.recurrent);
  const st = f32(p.state);
  const pre = f32(p.pre).subarray(0, 2 * n);
  for (let b = 0; b < B; b++) {
    const xo = (b * L + step) * 2 * H;
    const r = 2 * H * b;
    for (let k = 0; k < 2 * H; k++) pre[r + k] = x[xo + k] + rec[r + k];
  }
  R(pre, 0);
  const { u, d } = gates(pre, st, B, H, R);
  const s = new Float32Array(n);
  for (let i = 0; i < n; i++) s[i] = u[i] * d[i];
  R(s, 4);
  const out = f32(p.out).subarray(0, n);
  for (let i = 0; i < n; i++) out[i] = st[i] + s[i];
  R(out, 5);
}

/**
 * Backward of the unfused chain, in its tape order. A quantise's backward rounds the gradient
 * arriving at its output; each add/sub/mul/unary backward writes a float32 tensor. The gradient
 * at pre is assembled by its two slices' backwards: the σ half is copied into a zero tensor, the
 * tanh half then added to it (0 + g: a −0 becomes +0 there, and only there). The gradient
 * points' streams are p.gradStreams's, in tape order: gh, gs, gd, gu, gc, gPre.
 */
export function highwayStepGrad(p: HighwayStepGradParams): void {
  checkDims('highwayStepGrad', p);
  const { batch: B, width: H, length: L, step } = p;
  const n = B * H;
  const pre = f32(p.pre);
  const st = f32(p.state);
  const { u, d } = gates(pre, st, B, H, rounder(p.round, p.round?.stochastic ?? null));
  const R = rounder(p.round, p.gradStreams);
  const gh = f32(p.gradOut).slice(0, n);
  R(gh, 0);
  const gs = gh.slice();
  R(gs, 1);
  const gd = new Float32Array(n);
  for (let i = 0; i < n; i++) gd[i] = gs[i] * u[i];
  R(gd, 2);
  if (p.gradState) {
    const gState = f32(p.gradState);
    if (p.accumulateState) {
      for (let i = 0; i < n; i++) {
        gState[i] += gh[i];
        gState[i] -= gd[i];
      }
    } else for (let i = 0; i < n; i++) gState[i] = gh[i] - gd[i];
  }
  // Without a gradient at pre the unfused graph has no quantise on u, c or pre to round at.
  if (!p.gradProjected && !p.gradRecurrent) return;
  const gu = new Float32Array(n);
  for (let i = 0; i < n; i++) gu[i] = gs[i] * d[i];
  R(gu, 3);
  const gc = gd.slice();
  R(gc, 4);
  const gPre = new Float32Array(2 * n);
  for (let b = 0, i = 0; b < B; b++) {
    const r = 2 * H * b;
    for (let j = 0; j < H; j++, i++) {
      const t = Math.tanh(pre[r + j]);
      const sg = sigmoid(pre[r + H + j]);
      gPre[r + j] = (1 - t * t) * gc[i];
      gPre[r + j] = 0 + gPre[r + j];
      gPre[r + H + j] = sg * (1 - sg) * gu[i];
    }
  }
  R(gPre, 5);
  if (p.gradRecurrent) f32(p.gradRecurrent).set(gPre);
  if (p.gradProjected) {
    const gp = f32(p.gradProjected);
    for (let b = 0; b < B; b++) {
      const xo = (b * L + step) * 2 * H;
      const r = 2 * H * b;
      if (p.accumulateProjected) for (let k = 0; k < 2 * H; k++) gp[xo + k] += gPre[r + k];
      else for (let k = 0; k < 2 * H; k++) gp[xo + k] = gPre[r + k];
    }
  }
}
