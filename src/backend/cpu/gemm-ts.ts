// Pure-TypeScript SGEMM: the fallback when no system BLAS is available, and the faster choice for
// tiny products where the FFI call overhead dominates.
//
// Structure follows the Goto/BLIS scheme: C is computed in KC-deep slabs; for each slab a panel of
// op(B) and then blocks of op(A) are packed into contiguous Float64Array scratch (so the inner loop
// reads doubles with unit stride whatever the transpose/stride of the inputs), and a register-tiled
// micro-kernel multiplies MR x KC by KC x NR slivers into MR*NR float64 locals.

const MR = 4;
const NR = 4;
// KC * NR doubles of B (8 KiB) stay in L1 while a B sliver is reused across an A block;
// MC * KC doubles of A (256 KiB) stay in L2 across the NC loop.
const KC = 256;
const MC = 128;
const NC = 1024;

/**
 * C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C, row-major with leading dimensions.
 * beta == 0 overwrites C without reading it, so NaN/Inf already in C does not propagate.
 */
export function sgemmTs(
  transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
  a: Float32Array, aOffset: number, lda: number,
  b: Float32Array, bOffset: number, ldb: number,
  beta: number, c: Float32Array, cOffset: number, ldc: number,
): void {
  if (m <= 0 || n <= 0) return;
  scaleC(m, n, beta, c, cOffset, ldc);
  if (k <= 0 || alpha === 0) return;
  if (useDirect(m, n, k)) {
    sgemmDirect(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc);
    return;
  }

  packedGemm(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc);
}

/**
 * Packing pads m and n up to whole register tiles and every micro-kernel call has a fixed cost;
 * for products thinner than a tile that waste exceeds the unpacked kernel's extra loads. (For
 * small square products packing still wins: 8x8x8 runs 1.4x faster packed.)
 */
function useDirect(m: number, n: number, k: number): boolean {
  return m < DIRECT_MAX_THIN || n < DIRECT_MAX_THIN || k < DIRECT_MAX_THIN;
}

const DIRECT_MAX_THIN = 4;

/**
 * Unpacked kernel: walks op(A) and op(B) through their strides and keeps four dot products in
 * registers, as a 1x4 tile along n (or a 4x1 tile along m when n is thin). Memory traffic per
 * multiply-add is higher than with packing, but there is no setup cost and no padding.
 */
function sgemmDirect(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
  a: Float32Array, aOffset: number, lda: number, b: Float32Array, bOffset: number, ldb: number,
  c: Float32Array, cOffset: number, ldc: number): void {
  // op(A)(i, p) = a[aOffset + i*aRow + p*aCol], op(B)(p, j) = b[bOffset + p*bRow + j*bCol]
  const aRow = transA ? 1 : lda, aCol = transA ? lda : 1;
  const bRow = transB ? 1 : ldb, bCol = transB ? ldb : 1;
  if (n >= 4 || m < 4) {
    for (let i = 0; i < m; i++) {
      const aStart = aOffset + i * aRow;
      const cStart = cOffset + i * ldc;
      let j = 0;
      for (; j + 4 <= n; j += 4) {
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        let ai = aStart, bi = bOffset + j * bCol;
        const b1 = bCol, b2 = 2 * bCol, b3 = 3 * bCol;
        for (let p = 0; p < k; p++) {
          const av = a[ai];
          s0 += av * b[bi]; s1 += av * b[bi + b1]; s2 += av * b[bi + b2]; s3 += av * b[bi + b3];
          ai += aCol; bi += bRow;
        }
        const ci = cStart + j;
        c[ci] += alpha * s0; c[ci + 1] += alpha * s1; c[ci + 2] += alpha * s2; c[ci + 3] += alpha * s3;
      }
      for (; j < n; j++) {
        let s = 0;
        let ai = aStart, bi = bOffset + j * bCol;
        for (let p = 0; p < k; p++) {
          s += a[ai] * b[bi];
          ai += aCol; bi += bRow;
        }
        c[cStart + j] += alpha * s;
      }
    }
    return;
  }
  for (let j = 0; j < n; j++) {
    const bStart = bOffset + j * bCol;
    let i = 0;
    for (; i + 4 <= m; i += 4) {
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      let ai = aOffset + i * aRow, bi = bStart;
      const a1 = aRow, a2 = 2 * aRow, a3 = 3 * aRow;
      for (let p = 0; p < k; p++) {
        const bv = b[bi];
        s0 += a[ai] * bv; s1 += a[ai + a1] * bv; s2 += a[ai + a2] * bv; s3 += a[ai + a3] * bv;
        ai += aCol; bi += bRow;
      }
      const ci = cOffset + i * ldc + j;
      c[ci] += alpha * s0; c[ci + ldc] += alpha * s1; c[ci + 2 * ldc] += alpha * s2; c[ci + 3 * ldc] += alpha * s3;
    }
    for (; i < m; i++) {
      let s = 0;
      let ai = aOffset + i * aRow, bi = bStart;
      for (let p = 0; p < k; p++) {
        s += a[ai] * b[bi];
        ai += aCol; bi += bRow;
      }
      c[cOffset + i * ldc + j] += alpha * s;
    }
  }
}

function scaleC(m: number, n: number, beta: number, c: Float32Array, cOffset: number, ldc: number): void {
  if (beta === 1) return;
  for (let i = 0; i < m; i++) {
    const row = cOffset + i * ldc;
    // A loop, not fill(): TypedArray#fill costs more than the whole row for small n.
    if (beta === 0) for (let j = row; j < row + n; j++) c[j] = 0;
    else for (let j = row; j < row + n; j++) c[j] *= beta;
  }
}

/**
 * The packed path lives in a closure created once because V8 then treats the scratch buffers as
 * constants of the compiled kernels (base address and length folded into the instructions). As
 * module-level bindings of an ES module they are reloaded and re-checked on every access instead:
 * measured 6.0 vs 4.8 GFLOP/s at 512^3 for the same source.
 */
const packedGemm = createPackedGemm();

function createPackedGemm() {
  // Fixed-size scratch: the blocking bounds every packed panel, so steady state allocates nothing.
  const packedA = new Float64Array(MC * KC);
  const packedB = new Float64Array(NC * KC);
  const edgeTile = new Float64Array(MR * NR);

  /** C += alpha * op(A) * op(B), blocked over NC columns, KC depth and MC rows. */
  function packedGemm(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
    a: Float32Array, aOffset: number, lda: number, b: Float32Array, bOffset: number, ldb: number,
    c: Float32Array, cOffset: number, ldc: number): void {
    for (let jc = 0; jc < n; jc += NC) {
      const nc = Math.min(NC, n - jc);
      for (let pc = 0; pc < k; pc += KC) {
        const kc = Math.min(KC, k - pc);
        packB(transB, b, bOffset, ldb, pc, jc, kc, nc);
        for (let ic = 0; ic < m; ic += MC) {
          const mc = Math.min(MC, m - ic);
          packA(transA, a, aOffset, lda, ic, pc, mc, kc);
          macroKernel(mc, nc, kc, alpha, c, cOffset + ic * ldc + jc, ldc);
        }
      }
    }
  }

  /**
   * Packs op(A)[ic:ic+mc, pc:pc+kc] as ceil(mc/MR) slivers; sliver r holds, for each p, the MR values
   * op(A)[ic + r*MR + 0..MR-1, pc + p]; rows past mc are zero so the micro-kernel never branches.
   */
  function packA(trans: boolean, a: Float32Array, offset: number, lda: number,
    ic: number, pc: number, mc: number, kc: number): void {
    const dst = packedA;
    let d = 0;
    for (let ir = 0; ir < mc; ir += MR) {
      const rows = Math.min(MR, mc - ir);
      if (!trans) {
        // op(A)(i, p) = a[i*lda + p]
        const base = offset + (ic + ir) * lda + pc;
        if (rows === MR) {
          let s0 = base, s1 = base + lda, s2 = base + 2 * lda, s3 = base + 3 * lda;
          for (let p = 0; p < kc; p++) {
            dst[d] = a[s0++]; dst[d + 1] = a[s1++]; dst[d + 2] = a[s2++]; dst[d + 3] = a[s3++];
            d += MR;
          }
        } else {
          for (let p = 0; p < kc; p++) {
            for (let r = 0; r < MR; r++) dst[d + r] = r < rows ? a[base + r * lda + p] : 0;
            d += MR;
          }
        }
      } else {
        // op(A)(i, p) = a[p*lda + i]
        let s = offset + pc * lda + ic + ir;
        if (rows === MR) {
          for (let p = 0; p < kc; p++) {
            dst[d] = a[s]; dst[d + 1] = a[s + 1]; dst[d + 2] = a[s + 2]; dst[d + 3] = a[s + 3];
            d += MR; s += lda;
          }
        } else {
          for (let p = 0; p < kc; p++) {
            for (let r = 0; r < MR; r++) dst[d + r] = r < rows ? a[s + r] : 0;
            d += MR; s += lda;
          }
        }
      }
    }
  }

  /** Packs op(B)[pc:pc+kc, jc:jc+nc] as ceil(nc/NR) slivers of kc x NR, zero-padded past nc. */
  function packB(trans: boolean, b: Float32Array, offset: number, ldb: number,
    pc: number, jc: number, kc: number, nc: number): void {
    const dst = packedB;
    let d = 0;
    for (let jr = 0; jr < nc; jr += NR) {
      const cols = Math.min(NR, nc - jr);
      if (!trans) {
        // op(B)(p, j) = b[p*ldb + j]
        let s = offset + pc * ldb + jc + jr;
        if (cols === NR) {
          for (let p = 0; p < kc; p++) {
            dst[d] = b[s]; dst[d + 1] = b[s + 1]; dst[d + 2] = b[s + 2]; dst[d + 3] = b[s + 3];
            d += NR; s += ldb;
          }
        } else {
          for (let p = 0; p < kc; p++) {
            for (let q = 0; q < NR; q++) dst[d + q] = q < cols ? b[s + q] : 0;
            d += NR; s += ldb;
          }
        }
      } else {
        // op(B)(p, j) = b[j*ldb + p]
        const base = offset + (jc + jr) * ldb + pc;
        if (cols === NR) {
          let s0 = base, s1 = base + ldb, s2 = base + 2 * ldb, s3 = base + 3 * ldb;
          for (let p = 0; p < kc; p++) {
            dst[d] = b[s0++]; dst[d + 1] = b[s1++]; dst[d + 2] = b[s2++]; dst[d + 3] = b[s3++];
            d += NR;
          }
        } else {
          for (let p = 0; p < kc; p++) {
            for (let q = 0; q < NR; q++) dst[d + q] = q < cols ? b[base + q * ldb + p] : 0;
            d += NR;
          }
        }
      }
    }
  }

  function macroKernel(mc: number, nc: number, kc: number, alpha: number,
    c: Float32Array, cBase: number, ldc: number): void {
    for (let jr = 0; jr < nc; jr += NR) {
      const cols = Math.min(NR, nc - jr);
      const bIndex = jr * kc;
      for (let ir = 0; ir < mc; ir += MR) {
        const rows = Math.min(MR, mc - ir);
        microKernel4x4(kc, ir * kc, bIndex, alpha, c, cBase + ir * ldc + jr, ldc, rows, cols);
      }
    }
  }

  function microKernel4x4(kc: number, aIndex: number, bIndex: number, alpha: number,
    c: Float32Array, cIndex: number, ldc: number, rows: number, cols: number): void {
    const pa = packedA, pb = packedB;
    let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
    let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
    let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
    let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
    let ia = aIndex, ib = bIndex;
    for (let p = 0; p < kc; p++) {
      const a0 = pa[ia], a1 = pa[(ia + 1) | 0], a2 = pa[(ia + 2) | 0], a3 = pa[(ia + 3) | 0];
      const b0 = pb[ib], b1 = pb[(ib + 1) | 0], b2 = pb[(ib + 2) | 0], b3 = pb[(ib + 3) | 0];
      c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
      c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
      c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
      c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
      ia = (ia + 4) | 0; ib = (ib + 4) | 0;
    }
    if (rows === 4 && cols === 4) {
      let ci = cIndex;
      c[ci] += alpha * c00; c[ci + 1] += alpha * c01; c[ci + 2] += alpha * c02; c[ci + 3] += alpha * c03;
      ci += ldc;
      c[ci] += alpha * c10; c[ci + 1] += alpha * c11; c[ci + 2] += alpha * c12; c[ci + 3] += alpha * c13;
      ci += ldc;
      c[ci] += alpha * c20; c[ci + 1] += alpha * c21; c[ci + 2] += alpha * c22; c[ci + 3] += alpha * c23;
      ci += ldc;
      c[ci] += alpha * c30; c[ci + 1] += alpha * c31; c[ci + 2] += alpha * c32; c[ci + 3] += alpha * c33;
      return;
    }
    const tile = edgeTile;
    tile[0] = c00; tile[1] = c01; tile[2] = c02; tile[3] = c03;
    tile[4] = c10; tile[5] = c11; tile[6] = c12; tile[7] = c13;
    tile[8] = c20; tile[9] = c21; tile[10] = c22; tile[11] = c23;
    tile[12] = c30; tile[13] = c31; tile[14] = c32; tile[15] = c33;
    for (let r = 0; r < rows; r++) {
      for (let q = 0; q < cols; q++) c[cIndex + r * ldc + q] += alpha * tile[r * NR + q];
    }
  }

  return packedGemm;
}
