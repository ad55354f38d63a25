import type { CrossEntropyGradParams, CrossEntropyParams, LayerNormGradParams, LayerNormParams } from '../backend.ts';
import { readRounded } from './quantise.ts';
import { f32, floats, i32, roundStored } from './storage.ts';
import { checkLayerNormGradStorage, checkLayerNormStorage } from '../layer-norm-rules.ts';

/**
 * causalRows > 0: element (r, c) with c > r mod causalRows reads as −∞, the value a −∞ mask added
 * to x would give, so every later step is that of the mask-add form bit for bit.
 */
export function softmax(
  x: Float32Array,
  out: Float32Array,
  rows: number,
  cols: number,
  inScale: number,
  outScale: number,
  log: boolean,
  causalRows: number,
): void {
  const row = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const visible = causalRows > 0 ? (r % causalRows) + 1 : cols;
    for (let c = 0; c < cols; c++) row[c] = c < visible ? x[base + c] : -Infinity;
    let max = -Infinity;
    for (let c = 0; c < cols; c++) max = Math.max(max, inScale * row[c]);
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(inScale * row[c] - max);
    if (log) {
      const lse = max + Math.log(sum);
      for (let c = 0; c < cols; c++) out[base + c] = outScale * (inScale * row[c] - lse);
    } else {
      const k = outScale / sum;
      for (let c = 0; c < cols; c++) out[base + c] = k * Math.exp(inScale * row[c] - max);
    }
  }
}

export function softmaxGrad(y: Float32Array, gy: Float32Array, gx: Float32Array, rows: number, cols: number, gradScale: number, log: boolean): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let dot = 0;
    if (log) {
      for (let c = 0; c < cols; c++) dot += gy[base + c];
      for (let c = 0; c < cols; c++) gx[base + c] = gradScale * (gy[base + c] - Math.exp(y[base + c]) * dot);
    } else {
      for (let c = 0; c < cols; c++) dot += gy[base + c] * y[base + c];
      for (let c = 0; c < cols; c++) gx[base + c] = gradScale * y[base + c] * (gy[base + c] - dot);
    }
  }
}

export function layerNorm(p: LayerNormParams): void {
  checkLayerNormStorage(p);
  const x = f32(p.x), out = floats(p.out), mean = f32(p.mean), rstd = f32(p.rstd);
  const gamma = p.gamma ? f32(p.gamma) : null;
  const beta = p.beta ? f32(p.beta) : null;
  const { rows, cols, eps } = p;
  const sumOf = p.sumOf ? { a: readRounded(floats(p.sumOf.a), p.sumOf.readFormatA, rows * cols), b: f32(p.sumOf.b), sa: p.sumOf.scaleA, sb: p.sumOf.scaleB } : null;
  if (sumOf && (sumOf.a.length < rows * cols || sumOf.b.length < rows * cols)) throw new RangeError(`layerNorm: sumOf operands hold fewer than ${rows * cols} values`);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    // The same expression as the binary add kernel, rounded once on the store.
    if (sumOf) for (let i = base; i < base + cols; i++) x[i] = sumOf.sa * sumOf.a[i] + sumOf.sb * sumOf.b[i];
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += x[base + c];
    const mu = sum / cols;
    let sq = 0;
    for (let c = 0; c < cols; c++) {
      const d = x[base + c] - mu;
      sq += d * d;
    }
    const rs = 1 / Math.sqrt(sq / cols + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let c = 0; c < cols; c++) {
      let v = (x[base + c] - mu) * rs;
      if (gamma) v *= gamma[c];
      if (beta) v += beta[c];
      out[base + c] = v;
    }
  }
  roundStored(p.out, 0, rows * cols);
}

export function layerNormGrad(p: LayerNormGradParams): void {
  checkLayerNormGradStorage(p);
  const x = f32(p.x), mean = f32(p.mean), rstd = f32(p.rstd), gy = readRounded(floats(p.gradOut), p.gradOutReadFormat, p.rows * p.cols), gx = f32(p.gradX);
  const prior = p.gradXAddend ? f32(p.gradXAddend) : gx;
  const copy = p.gradXCopy ? f32(p.gradXCopy.target) : null;
  const copyScale = p.gradXCopy?.scale ?? 1;
  if (copy && copy.length < p.rows * p.cols) throw new RangeError(`layerNormGrad: gradXCopy holds ${copy.length} values, needs ${p.rows * p.cols}`);
  if (p.gradXAddend && p.gradXAddend.size < p.rows * p.cols) throw new RangeError(`layerNormGrad: gradXAddend holds ${p.gradXAddend.size} values, needs ${p.rows * p.cols}`);
  const gamma = p.gamma ? f32(p.gamma) : null;
  const { rows, cols } = p;
  const gGamma = p.gradGamma ? new Float64Array(cols) : null;
  const gBeta = p.gradBeta ? new Float64Array(cols) : null;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const mu = mean[r], rs = rstd[r];
    // dxhat = gy·γ;  dx = rstd·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat))
    let sumD = 0, sumDX = 0;
    for (let c = 0; c < cols; c++) {
      const xhat = (x[base + c] - mu) * rs;
      const d = gy[base + c] * (gamma ? gamma[c] : 1);
      sumD += d;
      sumDX += d * xhat;
      if (gGamma) gGamma[c] += gy[base + c] * xhat;
      if (gBeta) gBeta[c] += gy[base + c];
    }
    const meanD = sumD / cols, meanDX = sumDX / cols;
    for (let c = 0; c < cols; c++) {
      const xhat = (x[base + c] - mu) * rs;
      const d = gy[base + c] * (gamma ? gamma[c] : 1);
      const v = p.gradXScale * rs * (d - meanD - xhat * meanDX);
      gx[base + c] = p.accumulateGradX ? prior[base + c] + v : v;
      if (copy) copy[base + c] = copyScale * gx[base + c];
    }
  }
  if (p.gradXCopy16) {
    const target = floats(p.gradXCopy16.target);
    for (let i = 0; i < rows * cols; i++) target[i] = p.gradXCopy16.scale * gx[i];
    roundStored(p.gradXCopy16.target, 0, rows * cols);
  }
  for (const [sums, storage, scale] of [[gGamma, p.gradGamma, p.gradGammaScale], [gBeta, p.gradBeta, p.gradBetaScale]] as const) {
    if (!sums || !storage) continue;
    const out = f32(storage);
    for (let c = 0; c < cols; c++) out[c] = p.accumulateParams ? out[c] + scale * sums[c] : scale * sums[c];
  }
}

export function gather(table: Float32Array, ids: Int32Array, out: Float32Array, count: number, dim: number, tableRows: number): void {
  for (let i = 0; i < count; i++) {
    const id = ids[i];
    if (id < 0 || id >= tableRows) throw new Error(`gather: id ${id} outside [0, ${tableRows})`);
    out.set(table.subarray(id * dim, id * dim + dim), i * dim);
  }
}

export function scatterAdd(gradOut: Float32Array, ids: Int32Array, gradTable: Float32Array, count: number, dim: number, scale: number): void {
  for (let i = 0; i < count; i++) {
    const t = ids[i] * dim, g = i * dim;
    for (let c = 0; c < dim; c++) gradTable[t + c] += scale * gradOut[g + c];
  }
}

export function crossEntropy(p: CrossEntropyParams): void {
  const logits = floats(p.logits), labels = i32(p.labels), loss = f32(p.loss), lseOut = f32(p.logSumExp);
  const mask = p.mask ? f32(p.mask) : null;
  const { rows, vocab } = p;
  for (let r = 0; r < rows; r++) {
    const base = r * vocab;
    let max = -Infinity;
    for (let c = 0; c < vocab; c++) max = Math.max(max, logits[base + c]);
    let sum = 0;
    for (let c = 0; c < vocab; c++) sum += Math.exp(logits[base + c] - max);
    const lse = max + Math.log(sum);
    lseOut[r] = lse;
    const w = mask ? mask[r] : 1;
    const label = labels[r];
    loss[r] = w === 0 ? 0 : w * (lse - logits[base + label]);
  }
}

export function crossEntropyGrad(p: CrossEntropyGradParams): void {
  const logits = floats(p.logits), labels = i32(p.labels), lse = f32(p.logSumExp), gLoss = f32(p.gradLoss), gx = floats(p.gradLogits);
  const mask = p.mask ? f32(p.mask) : null;
  const { rows, vocab, scale } = p;
  for (let r = 0; r < rows; r++) {
    const base = r * vocab;
    const w = (mask ? mask[r] : 1) * gLoss[r] * scale;
    if (w === 0) {
      gx.fill(0, base, base + vocab);
      continue;
    }
    const l = lse[r];
    for (let c = 0; c < vocab; c++) gx[base + c] = w * Math.exp(logits[base + c] - l);
    gx[base + labels[r]] -= w;
  }
  roundStored(p.gradLogits, 0, rows * vocab);
}
