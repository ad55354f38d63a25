/**
 * CPU twins of the fused Recurrent Highway Network step. They reproduce the unfused op chain
 * (add, tanh, sigmoid, sub, mul, add, each followed by a quantise) bit for bit: every arithmetic
 * result is stored as float32 exactly where an op wrote its output tensor, the transcendental
 * functions and derivatives are the unary kernels' float64 formulas, and rounding is the quantise
 * kernel's nearest path.
 */
import type { HighwayStepGradParams, HighwayStepParams, NearestRounding } from '../backend.ts';
import { quantise } from '../../formats/quantise.ts';
import { sigmoid } from './math.ts';
import { f32 } from './storage.ts';

type Round = (values: Float32Array) => void;

function rounder(round: NearestRounding | null): Round {
  if (!round) return () => {};
  const options = { rounding: 'nearest', overflow: round.overflow, viaFp16: round.viaFp16 } as const;
  return (values) => quantise(values, values, round.format, options);
}

function checkDims(op: string, p: { batch: number; width: number; length: number; step: number }): void {
  for (const [name, v] of Object.entries({ batch: p.batch, width: p.width, length: p.length, step: p.step })) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${op}: ${name} must be a non-negative integer, got ${v}`);
  }
  if (p.step >= p.length) throw new RangeError(`${op}: step ${p.step} is outside a sequence of length ${p.length}`);
}

/** c = R(tanh(pre_c)), u = R(σ(pre_u)), d = R(c − state) for the n = B·H elements. */
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
  R(c);
  R(u);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = c[i] - st[i];
  R(d);
  return { c, u, d };
}

export function highwayStep(p: HighwayStepParams): void {
  checkDims('highwayStep', p);
  const { batch: B, width: H, length: L, step } = p;
  const n = B * H;
  const R = rounder(p.round);
  const x = f32(p.projected);
  const rec = f32(p.recurrent);
  const st = f32(p.state);
  const pre = f32(p.pre).subarray(0, 2 * n);
  for (let b = 0; b < B; b++) {
    const xo = (b * L + step) * 2 * H;
    const r = 2 * H * b;
    for (let k = 0; k < 2 * H; k++) pre[r + k] = x[xo + k] + rec[r + k];
  }
  R(pre);
  const { u, d } = gates(pre, st, B, H, R);
  const s = new Float32Array(n);
  for (let i = 0; i < n; i++) s[i] = u[i] * d[i];
  R(s);
  const out = f32(p.out).subarray(0, n);
  for (let i = 0; i < n; i++) out[i] = st[i] + s[i];
  R(out);
}

/**
 * Backward of the unfused chain, in its tape order. A quantise's backward rounds the gradient
 * arriving at its output; each add/sub/mul/unary backward writes a float32 tensor. The gradient
 * at pre is assembled by its two slices' backwards: the σ half is copied into a zero tensor, the
 * tanh half then added to it (0 + g: a −0 becomes +0 there, and only there).
 */
export function highwayStepGrad(p: HighwayStepGradParams): void {
  checkDims('highwayStepGrad', p);
  const { batch: B, width: H, length: L, step } = p;
  const n = B * H;
  const R = rounder(p.round);
  const pre = f32(p.pre);
  const st = f32(p.state);
  const { u, d } = gates(pre, st, B, H, R);
  const gh = f32(p.gradOut).slice(0, n);
  R(gh);
  const gs = gh.slice();
  R(gs);
  const gu = new Float32Array(n);
  const gd = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    gu[i] = gs[i] * d[i];
    gd[i] = gs[i] * u[i];
  }
  R(gu);
  R(gd);
  if (p.gradState) {
    const gState = f32(p.gradState);
    if (p.accumulateState) {
      for (let i = 0; i < n; i++) {
        gState[i] += gh[i];
        gState[i] -= gd[i];
      }
    } else for (let i = 0; i < n; i++) gState[i] = gh[i] - gd[i];
  }
  const gc = gd.slice();
  R(gc);
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
  R(gPre);
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
