/**
 * Problems for the gemmStrided tests (CPU twin and CUDA): operands as windows of named buffers,
 * a float64 reference, and a check that allows for float32 accumulation order.
 */
import { expect } from 'vitest';
import type { Storage, StridedGemmParams } from '../src/backend/backend.ts';
import { seededRandom } from './seeded-random.ts';

export interface Layout {
  readonly buffer: string;
  readonly offset: number;
  readonly ld: number;
  readonly batchStrides: readonly [number, number];
}

/** A product's sizes and flags: StridedGemmParams without its operands. */
export type Shape = Pick<StridedGemmParams, 'transA' | 'transB' | 'm' | 'n' | 'k' | 'alpha' | 'beta' | 'batch' | 'causal' | 'inputFormat'>;

export interface Problem {
  readonly shape: Shape;
  readonly a: Layout;
  readonly b: Layout;
  readonly c: Layout;
  readonly buffers: Record<string, Float32Array>;
}

/** Stored rows and columns of each operand (before transA/transB). */
export function storedDims(s: Shape): { a: [number, number]; b: [number, number]; c: [number, number] } {
  return { a: s.transA ? [s.k, s.m] : [s.m, s.k], b: s.transB ? [s.n, s.k] : [s.k, s.n], c: [s.m, s.n] };
}

/** Uniform values in [−1, 1). */
export function randomValues(n: number, seed: number): Float32Array {
  const uniform = seededRandom(seed);
  return Float32Array.from({ length: n }, () => 2 * uniform() - 1);
}

export interface PaddedLayout {
  readonly pad: number;
  readonly offset: number;
  /** Added to s0 (> 0: the two batch levels do not merge into one stride). */
  readonly gap: number;
  readonly seed: number;
  /** Rounds ld and the batch strides up to a multiple of this (4: 16-byte aligned rows). */
  readonly align?: number;
  readonly nanC?: boolean;
}

/**
 * Each operand in its own buffer: ld = columns + pad, entries (p, q) at offset + p·s0 + q·s1 with
 * s1 = rows·ld + pad and s0 = batch[1]·s1 + gap, each rounded up to a multiple of `align`.
 */
export function paddedProblem(shape: Shape, options: PaddedLayout): Problem {
  const dims = storedDims(shape);
  const buffers: Record<string, Float32Array> = {};
  const align = options.align ?? 1;
  const up = (v: number) => Math.ceil(v / align) * align;
  const layout = (name: 'a' | 'b' | 'c', seed: number): Layout => {
    const [rows, cols] = dims[name];
    const ld = up(Math.max(1, cols + options.pad));
    const s1 = up(rows * ld + options.pad);
    const s0 = up(shape.batch[1] * s1 + options.gap);
    const size = options.offset + (shape.batch[0] - 1) * s0 + (shape.batch[1] - 1) * s1 + rows * ld + 3;
    buffers[name] = randomValues(size, seed);
    return { buffer: name, offset: options.offset, ld, batchStrides: [s0, s1] };
  };
  const problem = { shape, a: layout('a', options.seed), b: layout('b', options.seed + 1), c: layout('c', options.seed + 2), buffers };
  if (options.nanC) forEachEntry(problem, 'c', (index) => (buffers.c![index] = Number.NaN));
  return problem;
}

/** Buffer index of element (i, j) of operand `which` (as stored) in batch entry (p, q). */
export function indexOf(l: Layout, p: number, q: number, i: number, j: number): number {
  return l.offset + p * l.batchStrides[0] + q * l.batchStrides[1] + i * l.ld + j;
}

function forEachEntry(problem: Problem, which: 'a' | 'b' | 'c', f: (index: number, p: number, q: number, i: number, j: number) => void): void {
  const [rows, cols] = storedDims(problem.shape)[which];
  const l = problem[which];
  for (let p = 0; p < problem.shape.batch[0]; p++) {
    for (let q = 0; q < problem.shape.batch[1]; q++) {
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) f(indexOf(l, p, q, i, j), p, q, i, j);
    }
  }
}

/** Buffer index of op(A)[i][l] and op(B)[l][j]. */
export function opIndex(problem: Problem, which: 'a' | 'b', p: number, q: number, row: number, col: number): number {
  const transposed = which === 'a' ? problem.shape.transA : problem.shape.transB;
  return transposed ? indexOf(problem[which], p, q, col, row) : indexOf(problem[which], p, q, row, col);
}

/** Makes A keep the causal promise: op(A)[i][l] = 0 for l > i ('k-to-row') or l < i ('k-from-row'). */
export function keepPromise(problem: Problem): void {
  const { causal, m, k, batch } = problem.shape;
  if (causal !== 'k-to-row' && causal !== 'k-from-row') return;
  const a = problem.buffers[problem.a.buffer]!;
  for (let p = 0; p < batch[0]; p++) {
    for (let q = 0; q < batch[1]; q++) {
      for (let i = 0; i < m; i++) {
        for (let l = 0; l < k; l++) if (causal === 'k-to-row' ? l > i : l < i) a[opIndex(problem, 'a', p, q, i, l)] = 0;
      }
    }
  }
}

export function bind(problem: Problem, s: Record<string, Storage>): StridedGemmParams {
  const operand = (l: Layout) => ({ storage: s[l.buffer]!, offset: l.offset, ld: l.ld, batchStrides: l.batchStrides });
  return { ...problem.shape, a: operand(problem.a), b: operand(problem.b), c: operand(problem.c) };
}

export interface Reference {
  /** By buffer index of C: the float64 result, and |α|·Σ|a·b| + |β·c| (the scale of rounding errors). */
  readonly expected: Map<number, number>;
  readonly magnitude: Map<number, number>;
  /** Where 'lower-output' writes 0. */
  readonly zeros: Set<number>;
}

/** The naive triple loop in float64 (full k: the causal promises only say which terms are zero). */
export function reference(problem: Problem): Reference {
  const { alpha, beta, m, n, k, batch, causal } = problem.shape;
  const a = problem.buffers[problem.a.buffer]!, b = problem.buffers[problem.b.buffer]!, c = problem.buffers[problem.c.buffer]!;
  const expected = new Map<number, number>(), magnitude = new Map<number, number>(), zeros = new Set<number>();
  for (let p = 0; p < batch[0]; p++) {
    for (let q = 0; q < batch[1]; q++) {
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let sum = 0, abs = 0;
          for (let l = 0; l < k; l++) {
            const t = a[opIndex(problem, 'a', p, q, i, l)]! * b[opIndex(problem, 'b', p, q, l, j)]!;
            sum += t;
            abs += Math.abs(t);
          }
          const index = indexOf(problem.c, p, q, i, j);
          const scaledC = beta === 0 ? 0 : beta * c[index]!;
          if (causal === 'lower-output' && j > i) zeros.add(index);
          expected.set(index, zeros.has(index) ? 0 : alpha * sum + scaledC);
          magnitude.set(index, zeros.has(index) ? 0 : Math.abs(alpha) * abs + Math.abs(scaledC));
        }
      }
    }
  }
  return { expected, magnitude, zeros };
}

/**
 * `got` (the C buffer after the call) against `want` (the float64 reference, or another backend's
 * float32 result): inside C within rel·magnitude (+1e-30), exactly +0 where 'lower-output' zeroes;
 * elements outside every C matrix exactly as they were.
 */
export function expectMatches(problem: Problem, ref: Reference, got: Float32Array, want: ArrayLike<number> | null, rel: number, label: string): void {
  const before = problem.buffers[problem.c.buffer]!;
  const bad: string[] = [];
  let count = 0;
  for (let index = 0; index < got.length; index++) {
    const g = got[index]!;
    const expected = ref.expected.get(index);
    let ok: boolean;
    if (expected === undefined) ok = Object.is(g, before[index]);
    else if (ref.zeros.has(index)) ok = Object.is(g, 0);
    else ok = Math.abs(g - (want ? want[index]! : expected)) <= rel * ref.magnitude.get(index)! + 1e-30;
    if (!ok) {
      count++;
      if (bad.length < 5) bad.push(`[${index}] got ${g} want ${want ? want[index] : expected ?? before[index]}`);
    }
  }
  expect(count === 0 ? '' : `${label}: ${count} elements off: ${bad.join('; ')}`).toBe('');
}
