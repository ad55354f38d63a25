import { record } from '../autograd.ts';
import { formatShape, type Tensor } from '../tensor.ts';
import { empty, zeros } from './creation.ts';

export interface Conv1dOptions {
  groups?: number;
  /** Forward output multiplier (GEMM alpha) and the backward multipliers replacing it. */
  scale?: number;
  gradScaleInput?: number;
  gradScaleWeight?: number;
}

/**
 * Causal grouped 1-D convolution over sequences: x [B, L, Cin], weight [k, Cin/groups, Cout]
 * (Keras layout), output [B, L, Cout] where position t sees inputs t−k+1 … t (zeros before the
 * start). Computed as im2col (one strided copy) and one batched GEMM over the groups.
 */
export function conv1dCausal(x: Tensor, weight: Tensor, options: Conv1dOptions = {}): Tensor {
  const { groups = 1, scale = 1 } = options;
  const gradScaleInput = options.gradScaleInput ?? scale;
  const gradScaleWeight = options.gradScaleWeight ?? scale;
  if (x.rank !== 3 || weight.rank !== 3) throw new Error(`conv1d: expected x [B, L, C] and weight [k, Cin/g, Cout], got ${x.describe()} and ${weight.describe()}`);
  const [B, L, cin] = x.shape;
  const [k, cinPerGroup, cout] = weight.shape;
  if (cin % groups !== 0 || cout % groups !== 0 || cinPerGroup !== cin / groups) {
    throw new Error(`conv1d: weight ${formatShape(weight.shape)} does not fit input channels ${cin} with ${groups} groups`);
  }
  const coutPerGroup = cout / groups;
  const backend = x.backend;
  const rows = B * L;
  const patch = k * cinPerGroup;
  // im2col: cols[b, t, g, j, c] = xPadded[b, t + j, g·cin/g + c], read straight from x with the
  // first k−1 rows of each sequence being the causal zero padding.
  const cols = zeros([rows, groups, patch], 'f32', backend);
  const colStrides = [L * groups * patch, groups * patch, patch, cinPerGroup, 1];
  // Source: element (b, t, g, j, c) of the padded input is x[b, t + j − (k−1), g, c] when in range.
  // Copy tap by tap so out-of-range (padding) positions are simply skipped.
  for (let j = 0; j < k; j++) {
    const shift = k - 1 - j; // positions t < shift read padding
    if (shift >= L) continue;
    backend.copy(
      { storage: x.storage, offset: 0, strides: [L * cin, cin, cinPerGroup, 1] },
      { storage: cols.storage, offset: shift * groups * patch + j * cinPerGroup, strides: [colStrides[0], colStrides[1], colStrides[2], colStrides[4]] },
      [B, L - shift, groups, cinPerGroup],
      1,
      false,
    );
  }
  const out = empty([B, L, cout], 'f32', backend);
  backend.gemm({
    transA: false, transB: false, m: rows, n: coutPerGroup, k: patch, alpha: scale,
    a: cols.storage, aOffset: 0, lda: groups * patch,
    b: weight.storage, bOffset: 0, ldb: cout,
    beta: 0, c: out.storage, cOffset: 0, ldc: cout,
    batch: groups, strideA: patch, strideB: coutPerGroup, strideC: coutPerGroup,
  });
  return record(out, [x, weight], (g) => {
    let gx: Tensor | null = null;
    let gw: Tensor | null = null;
    if (weight.requiresGrad) {
      gw = empty(weight.shape, 'f32', backend);
      backend.gemm({
        transA: true, transB: false, m: patch, n: coutPerGroup, k: rows, alpha: gradScaleWeight,
        a: cols.storage, aOffset: 0, lda: groups * patch,
        b: g.storage, bOffset: 0, ldb: cout,
        beta: 0, c: gw.storage, cOffset: 0, ldc: cout,
        batch: groups, strideA: patch, strideB: coutPerGroup, strideC: coutPerGroup,
      });
    }
    if (x.requiresGrad) {
      const gcols = empty([rows, groups, patch], 'f32', backend);
      backend.gemm({
        transA: false, transB: true, m: rows, n: patch, k: coutPerGroup, alpha: gradScaleInput,
        a: g.storage, aOffset: 0, lda: cout,
        b: weight.storage, bOffset: 0, ldb: cout,
        beta: 0, c: gcols.storage, cOffset: 0, ldc: groups * patch,
        batch: groups, strideA: coutPerGroup, strideB: coutPerGroup, strideC: patch,
      });
      gx = zeros(x.shape, 'f32', backend);
      for (let j = 0; j < k; j++) {
        const shift = k - 1 - j;
        if (shift >= L) continue;
        backend.copy(
          { storage: gcols.storage, offset: shift * groups * patch + j * cinPerGroup, strides: [colStrides[0], colStrides[1], colStrides[2], colStrides[4]] },
          { storage: gx.storage, offset: 0, strides: [L * cin, cin, cinPerGroup, 1] },
          [B, L - shift, groups, cinPerGroup],
          1,
          true,
        );
      }
    }
    return [gx, gw];
  });
}
