import type { CausalGemm, GemmParams, StridedGemmParams, StridedMatrix } from '../../backend/backend.ts';
import { record, SUNK } from '../autograd.ts';
import { formatShape, type Tensor } from '../tensor.ts';
import { empty } from './creation.ts';
import { gradientTarget, headsView, windowCoverage, type HeadsView } from './heads.ts';
import type { MatmulOptions } from './matmul.ts';

/** Which entries causal attention makes zero in the forward product and in each gradient product (see CausalGemm). */
export interface CausalProducts {
  readonly forward: CausalGemm;
  readonly gradA: CausalGemm;
  readonly gradB: CausalGemm;
}

export interface MatmulHeadsOptions extends MatmulOptions {
  /** Default: no entries known to be zero. */
  causal?: CausalProducts;
  /**
   * Write the [P, Q, m, n] result with element (p, q, i, j) at p·strides[0] + q·strides[1] +
   * i·strides[2] + j of a new tensor of `shape`, which the windows must cover exactly: e.g. the
   * per-head products of attention written as [B, L, H, D], the layout the output projection reads.
   */
  out?: { readonly shape: readonly number[]; readonly strides: readonly [number, number, number] };
}

const NO_CAUSAL: CausalProducts = { forward: 'none', gradA: 'none', gradB: 'none' };

function matrix(v: HeadsView, storageOf: Tensor = v.tensor): StridedMatrix {
  return { storage: storageOf.storage, offset: v.offset, ld: v.strides[2], batchStrides: [v.strides[0], v.strides[1]] };
}

/**
 * Per-(p, q) products op(a)·op(b)·scale over windows (T.headsView: [P, Q, rows, cols], the last
 * axis contiguous) with no copy on either side: the operands are read where they lie (e.g. k and v
 * inside a fused [B, L, 3, H, D] projection) and their gradients are written into the same windows
 * of their sources' gradients (added where autograd already holds one). Backward factors and
 * formats as T.matmul.
 */
export function matmulHeads(a: HeadsView, b: HeadsView, options: MatmulHeadsOptions = {}): Tensor {
  const { transA = false, transB = false, scale = 1, causal = NO_CAUSAL } = options;
  const gradScaleA = options.gradScaleA ?? scale;
  const gradScaleB = options.gradScaleB ?? scale;
  const [P, Q, ra, ca] = a.shape;
  const [, , rb, cb] = b.shape;
  const m = transA ? ca : ra;
  const k = transA ? ra : ca;
  const n = transB ? rb : cb;
  if (b.shape[0] !== P || b.shape[1] !== Q || (transB ? cb : rb) !== k) {
    throw new Error(`matmulHeads: windows ${formatShape(a.shape)}${transA ? 'ᵀ' : ''} and ${formatShape(b.shape)}${transB ? 'ᵀ' : ''} do not multiply`);
  }
  const backend = a.tensor.backend;
  if (b.tensor.backend !== backend) throw new Error('matmulHeads: operands live on different backends');
  const layout = options.out ?? { shape: [P, Q, m, n], strides: [Q * m * n, m * n, n] as const };
  const out = empty(layout.shape, 'f32', backend);
  const outView = headsView(out, [P, Q, m, n], layout.strides);
  if (!windowCoverage(out.size, [outView]).tiles) throw new Error(`matmulHeads: output strides ${layout.strides.join(', ')} do not tile ${formatShape(layout.shape)}`);
  const product = (x: StridedMatrix, tx: boolean, y: StridedMatrix, ty: boolean, c: StridedMatrix, mm: number, nn: number, kk: number, alpha: number, beta: number, mode: CausalGemm, format: GemmParams['inputFormat']): StridedGemmParams =>
    ({ transA: tx, transB: ty, m: mm, n: nn, k: kk, alpha, beta, batch: [P, Q], a: x, b: y, c, causal: mode, inputFormat: format });
  backend.gemmStrided(product(matrix(a), transA, matrix(b), transB, matrix(outView), m, n, k, scale, 0, causal.forward, options.inputFormat));

  const sources = [...new Set([a.tensor, b.tensor])];
  const gradFormat = options.gradFormat ?? options.inputFormat;
  return record(out, sources, (g, sinks) => {
    const targets = sources.map((source, i) => {
      const views = [a, b].filter((x) => x.tensor === source);
      if (!source.requiresGrad) return null;
      if (views.some((v) => !windowCoverage(source.size, [v]).injective)) {
        throw new Error(`matmulHeads: a window that repeats elements of ${source.describe()} (a zero stride) cannot take a gradient; use T.matmul`);
      }
      return gradientTarget(source, sinks[i], views, true);
    });
    const into = (x: HeadsView) => targets[sources.indexOf(x.tensor)]!;
    const gm = matrix(outView, g);
    // Both gradients are independent products: queued together, a backend may run them side by side.
    const products: StridedGemmParams[] = [];
    if (a.tensor.requiresGrad) {
      const t = into(a);
      // stored A: [m, k] = g·op(B)ᵀ, or for transA [k, m] = op(B)·gᵀ
      if (!transA) products.push(product(gm, false, matrix(b), !transB, matrix(a, t.tensor), m, k, n, gradScaleA, t.beta, causal.gradA, gradFormat));
      else products.push(product(matrix(b), transB, gm, true, matrix(a, t.tensor), k, m, n, gradScaleA, t.beta, causal.gradA, gradFormat));
    }
    if (b.tensor.requiresGrad) {
      const t = into(b);
      // stored B: [k, n] = op(A)ᵀ·g, or for transB [n, k] = gᵀ·op(A)
      if (!transB) products.push(product(matrix(a), !transA, gm, false, matrix(b, t.tensor), k, n, m, gradScaleB, t.beta, causal.gradB, gradFormat));
      else products.push(product(gm, true, matrix(a), transA, matrix(b, t.tensor), n, k, m, gradScaleB, t.beta, causal.gradB, gradFormat));
    }
    // Two windows of one source that share elements both add into them: one after the other.
    const overlapping = a.tensor === b.tensor && !windowCoverage(a.tensor.size, [a, b]).injective;
    if (overlapping) for (const p of products) backend.gemmStrided(p);
    else if (products.length > 0) backend.gemmsStrided(products);
    return targets.map((t) => (t === null ? null : t.sunk ? SUNK : t.tensor));
  });
}
