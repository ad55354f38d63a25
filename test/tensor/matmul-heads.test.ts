import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import type { StridedGemmParams } from '../../src/backend/backend.ts';
import { CpuBackend } from '../../src/backend/cpu/index.ts';
import { gradcheck, param, values } from './gradcheck.ts';

const [B, L, H, D] = [2, 5, 3, 4];
/** Part i of a packed [B, L, 3, H, D] projection as an [H, B, L, D] window (the char-LM's head order). */
const part = (qkv: T.Tensor, i: number) => T.headsView(qkv, [H, B, L, D], [D, L * 3 * H * D, 3 * H * D], i * H * D);
/** The same part gathered by a strided copy. */
const gather = (qkv: T.Tensor, i: number) => T.asStrided(qkv, [H, B, L, D], [D, L * 3 * H * D, 3 * H * D, 1], i * H * D);

function close(actual: Float32Array, expected: Float32Array, tolerance = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  let scale = 1e-6;
  for (const x of expected) scale = Math.max(scale, Math.abs(x));
  for (let i = 0; i < actual.length; i++) expect(Math.abs(actual[i]! - expected[i]!) / scale, `element ${i}`).toBeLessThan(tolerance);
}

/** Output, the packed tensor's gradient and the other operand's, from Σ w·f(qkv, x). */
function outputAndGrads(f: (qkv: T.Tensor, x: T.Tensor) => T.Tensor, xShape: number[]): Float32Array[] {
  return T.tidy(() => {
    const qkv = param(values(B * L * 3 * H * D, 3), [B, L, 3 * H * D]);
    const x = param(values(xShape.reduce((p, d) => p * d, 1), 4), xShape);
    const out = f(qkv, x);
    T.backward(T.sum(T.mul(out, T.tensor(values(out.size, 5), [...out.shape]))));
    return [out.toFloat32Array(), qkv.grad!.toFloat32Array(), x.grad!.toFloat32Array()];
  });
}

describe('T.matmulHeads (products on windows, no copies)', () => {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      it(`equals T.matmul on gathered copies, transA ${transA}, transB ${transB}, with separate backward factors`, () => {
        // a is k's window [L, D]; x is the plain second operand, [k, 3] or [3, k].
        const inner = transA ? L : D;
        const xShape = transB ? [H, B, 3, inner] : [H, B, inner, 3];
        const options = { transA, transB, scale: 0.7, gradScaleA: 1.3, gradScaleB: 0.4 };
        const viaWindows = outputAndGrads((qkv, x) => T.matmulHeads(part(qkv, 1), T.heads(x), options), xShape);
        const viaCopies = outputAndGrads((qkv, x) => T.matmul(gather(qkv, 1), x, options), xShape);
        viaWindows.forEach((x, i) => close(x, viaCopies[i]!));
      });
    }
  }

  it('writes into a given layout, and adds into a gradient autograd already holds (two windows of one source in two ops)', () => {
    const f = (windows: boolean) => (qkv: T.Tensor, x: T.Tensor) => {
      const q = windows ? part(qkv, 0) : null;
      const k = windows ? part(qkv, 1) : null;
      const v = windows ? part(qkv, 2) : null;
      const scores = windows ? T.matmulHeads(T.heads(x), k!, { transB: true }) : T.matmul(x, gather(qkv, 1), { transB: true });
      const context = windows
        ? T.matmulHeads(T.heads(scores), v!, { out: { shape: [B, L, H, D], strides: [D, L * H * D, H * D] } })
        : T.permute(T.matmul(scores, gather(qkv, 2)), [1, 2, 0, 3]);
      // q also feeds a third product, so qkv's gradient collects three windows from three ops.
      const third = windows ? T.matmulHeads(q!, T.heads(x), { transA: true }) : T.matmul(gather(qkv, 0), x, { transA: true });
      return T.add(T.reshape(context, [B * L * H * D]), T.mul(T.sum(third), T.scalar(0.01)));
    };
    const viaWindows = outputAndGrads(f(true), [H, B, L, D]);
    const viaCopies = outputAndGrads(f(false), [H, B, L, D]);
    viaWindows.forEach((x, i) => close(x, viaCopies[i]!));
  });

  it('gives both windows of one source their gradients in one op (q·kᵀ out of one projection)', () => {
    gradcheck([[B, L, 3 * H * D]], (qkv) => T.matmulHeads(part(qkv, 0), part(qkv, 1), { transB: true, scale: 0.5 }));
    gradcheck([[B, L, 3 * H * D]], (qkv) => T.matmulHeads(part(qkv, 0), part(qkv, 0), { transB: true }));
  });

  it('writes zeros above the diagonal for a lower-output product', () => {
    T.tidy(() => {
      const qkv = T.tensor(values(B * L * 3 * H * D, 6), [B, L, 3 * H * D]);
      const causal = { forward: 'lower-output', gradA: 'none', gradB: 'none' } as const;
      const scores = T.matmulHeads(part(qkv, 0), part(qkv, 1), { transB: true, causal }).toFloat32Array();
      const full = T.matmul(gather(qkv, 0), gather(qkv, 1), { transB: true }).toFloat32Array();
      for (let e = 0; e < full.length; e++) {
        const [i, j] = [Math.floor(e / L) % L, e % L];
        expect(scores[e]).toBe(j > i ? 0 : full[e]);
      }
    });
  });

  it('refuses outputs that do not tile, windows that do not multiply, and gradients through a zero stride', () => {
    T.tidy(() => {
      const qkv = param(values(B * L * 3 * H * D, 7), [B, L, 3 * H * D]);
      expect(() => T.matmulHeads(part(qkv, 0), part(qkv, 1))).toThrow(/do not multiply/);
      expect(() => T.matmulHeads(part(qkv, 0), part(qkv, 1), { transB: true, out: { shape: [H, B, L, L], strides: [B * L * L, L * L, 0] } })).toThrow(/do not tile/);
      const shared = T.headsView(qkv, [H, B, D, D], [0, 0, 3 * H * D]);
      const out = T.matmulHeads(shared, shared);
      expect(() => T.backward(T.sum(out))).toThrow(/zero stride/);
    });
  });

  it('hands both gradient products to the backend together, unless their windows of one source overlap', () => {
    class Recording extends CpuBackend {
      readonly batches: number[] = [];
      override gemmsStrided(params: readonly StridedGemmParams[]): void {
        this.batches.push(params.length);
        super.gemmsStrided(params);
      }
    }
    const backend = new Recording();
    const batchesOf = (b: number, a: number) =>
      T.withBackend(backend, () =>
        T.tidy(() => {
          backend.batches.length = 0;
          const qkv = param(values(B * L * 3 * H * D, 8), [B, L, 3 * H * D]);
          T.backward(T.sum(T.matmulHeads(part(qkv, a), part(qkv, b), { transB: true })));
          return [...backend.batches];
        }),
      );
    expect(batchesOf(1, 0)).toEqual([2]);
    // q·qᵀ: both gradients add into q's window, so they run one after the other.
    expect(batchesOf(0, 0)).toEqual([]);
  });
});
