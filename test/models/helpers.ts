import { expect } from 'vitest';
import { loadExperiment } from '../../src/config/load.ts';
import type { ExperimentConfig, Mixer, ScalingRules } from '../../src/config/schema.ts';
import { buildCharLM, type CharLM } from '../../src/models/charlm/index.ts';
import type { TokenBatch } from '../../src/models/types.ts';
import * as T from '../../src/tensor/index.ts';

export const VOCAB = 11;

/** A tiny char-LM configuration (hidden 16, depth 2, 2 sequences of 8). */
export function tinyConfig(mixer: Mixer, scaling: 'regular' | 'unit', rules: ScalingRules = 'paper-charlm', extra: string[] = []): ExperimentConfig {
  return loadExperiment(
    'charlm-quick',
    [
      `model.mixer=${mixer}`,
      'model.hidden=16',
      'model.depth=2',
      'model.ffn_multiple=2',
      'model.attention.heads=2',
      'model.attention.head_size=4',
      'model.attention.frequencies=8',
      'model.attention.max_period=16',
      'model.conv.kernel=3',
      'model.conv.groups=4',
      `scaling.rules=${rules}`,
      'data.sequences=2',
      'data.sequence_length=8',
      'data.overlap=2',
      ...extra,
    ],
    { scaling },
  ).config;
}

/** Deterministic tokens; the mask drops the first `overlap` positions of every row but the first. */
export function tinyBatch(config: ExperimentConfig, vocab = VOCAB, seed = 1): TokenBatch {
  const { sequences: B, sequence_length: L, overlap } = config.data;
  const tokens = new Int32Array(B * L);
  let s = seed;
  for (let i = 0; i < tokens.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    tokens[i] = (s >>> 16) % vocab;
  }
  const mask = new Float32Array(B * L).map((_, i) => (Math.floor(i / L) > 0 && i % L < overlap ? 0 : 1));
  return T.persistent(() => ({ tokens: T.tensor(tokens, [B, L]), mask: T.tensor(mask, [B, L]) }));
}

export function disposeBatch(batch: TokenBatch): void {
  batch.tokens.dispose();
  batch.mask.dispose();
}

/** Every parameter's gradient after one backward pass (then zeroed). */
export function parameterGradients(model: CharLM, batch: TokenBatch): Map<string, Float32Array> {
  T.tidy(() => T.backward(model.loss(batch, { training: true }).loss));
  const grads = new Map<string, Float32Array>();
  for (const p of model.parameters) {
    grads.set(p.name, p.tensor.grad!.toFloat32Array());
    p.tensor.grad!.backend.fill(p.tensor.grad!.storage, 0, p.tensor.grad!.size, 0);
  }
  return grads;
}

function lossValue(model: CharLM, batch: TokenBatch): number {
  return T.noGrad(() => T.tidy(() => model.loss(batch, { training: false }).loss.item()));
}

/**
 * Finite differences of the loss for the `perTensor` elements of each parameter with the
 * largest analytic gradient: central, forward and backward, since a ReLU kink inside the step
 * spoils the central one but rarely both one-sided ones.
 */
export function finiteDifferences(
  model: CharLM,
  batch: TokenBatch,
  analytic: Map<string, Float32Array>,
  options: { perTensor?: number; eps?: number } = {},
): Map<string, GradientCheck> {
  const { perTensor = 3, eps = 1e-3 } = options;
  const out = new Map<string, GradientCheck>();
  const centre = lossValue(model, batch);
  for (const p of model.parameters) {
    const a = analytic.get(p.name)!;
    const order = Array.from(a.keys()).sort((i, j) => Math.abs(a[j]) - Math.abs(a[i])).slice(0, perTensor);
    const values = p.tensor.toFloat32Array();
    const entry: GradientCheck = { analytic: [], numeric: [] };
    for (const i of order) {
      const set = (v: number) => p.tensor.backend.write(p.tensor.storage, Float32Array.of(v), i);
      set(values[i] + eps);
      const plus = lossValue(model, batch);
      set(values[i] - eps);
      const minus = lossValue(model, batch);
      set(values[i]);
      entry.analytic.push(a[i]);
      entry.numeric.push([(plus - minus) / (2 * eps), (plus - centre) / eps, (centre - minus) / eps]);
    }
    out.set(p.name, entry);
  }
  return out;
}

export interface GradientCheck {
  analytic: number[];
  /** per element: [central, forward, backward] differences */
  numeric: [number, number, number][];
}

/**
 * Asserts analytic = factor(name) × numeric for every checked element (by the best of the three
 * differences), within `tol` of the largest central difference in that tensor plus an absolute
 * floor for float32 noise.
 */
export function expectGradients(checks: Map<string, GradientCheck>, factor: (name: string) => number, tol = 0.03): void {
  for (const [name, { analytic, numeric }] of checks) {
    const c = factor(name);
    const scale = Math.max(...numeric.map((n) => Math.abs(n[0])));
    analytic.forEach((a, k) => {
      const err = Math.min(...numeric[k].map((n) => Math.abs(a / c - n)));
      expect(err, `${name}[${k}]: analytic ${a} = ${c.toPrecision(4)} × ${a / c}, numeric ${numeric[k].join(' / ')}`).toBeLessThanOrEqual(
        tol * scale + 3e-4,
      );
    });
  }
}

export function withModel<R>(config: ExperimentConfig, fn: (model: CharLM) => R, vocab = VOCAB, seed = 3): R {
  const model = buildCharLM(config, vocab, seed);
  try {
    return fn(model);
  } finally {
    model.dispose();
  }
}
