/**
 * Reductions and row-wise/embedding kernels, CUDA against the CPU twin.
 * Tolerances: sums accumulate in float64 on both sides, only the summation order differs, so
 * results agree to float32 rounding (rel 1e-5, plus 1e-6 of the largest value for sums that cancel
 * to near zero). Softmax and cross-entropy exponentiate in float32 on the GPU (rel 1e-5).
 * scatterAdd adds in id order in double, as the CPU twin does: bit-identical (with
 * REPRO_CUDA_ATOMIC_SCATTER=1, float atomics in any order: SUMS).
 * layerNormGrad (rows ≤ 1024 columns) does the elementwise part in float32 and sums each
 * column over at most 32 rows in float32 before float64: still inside SUMS (rel 1e-5, plus 1e-6 of
 * the largest value).
 */
import { describe, expect, it } from 'vitest';
import type { ReduceKind, Storage } from '../../src/backend/backend.ts';
import { quantise } from '../../src/formats/quantise.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import { cpu, cuda, expectClose, expectSameBits, noCudaReason, positiveValues, runBoth, runOn, testValues } from './helpers.ts';

const SUMS = { rel: 1e-5, absOfMax: 1e-6 };
const KINDS: readonly ReduceKind[] = ['sum', 'sumSquares', 'max', 'min'];

describe.skipIf(!cuda)(`CUDA reduction and nn kernels ${noCudaReason}`, () => {
  const cases: { x: number[]; out: number[] }[] = [
    { x: [64, 300], out: [64, 1] },
    { x: [64, 300], out: [1, 300] },
    { x: [4, 50, 30], out: [4, 1, 30] },
    { x: [4, 50, 30], out: [1, 50, 1] },
    { x: [4, 5, 6, 7], out: [1, 5, 1, 7] },
    { x: [3, 1000], out: [1, 1] },
    { x: [6, 7], out: [6, 7] },
    { x: [2, 0, 3], out: [2, 1, 3] },
    // Long columns over few outputs: the mid axis is split into chunks and combined in order.
    { x: [1000, 40], out: [1, 40] },
    { x: [2, 700, 33], out: [2, 1, 33] },
  ];
  for (const kind of KINDS) {
    it(`reduce ${kind} over leading, trailing, middle, split and no axes`, () => {
      for (const { x: xShape, out: outShape } of cases) {
        const size = xShape.reduce((p, d) => p * d, 1);
        const outSize = outShape.reduce((p, d) => p * d, 1);
        const x = testValues(size, 71);
        if (size > 10) x[5] = kind === 'max' ? 50 : kind === 'min' ? -50 : x[5]!;
        const { cpu, gpu } = runBoth({ x, out: new Float32Array(outSize) }, (b, s) => b.reduce(kind, s.x!, xShape, s.out!, outShape, 0.5), ['out']);
        expectClose(gpu.out!, cpu.out!, SUMS, `${kind} [${xShape}] → [${outShape}]`);
      }
    });
  }

  it('reductions over a middle block of at most 32 rows (a thread per output) equal the CPU twin bit for bit', () => {
    for (const kind of KINDS) {
      const shapes: [number[], number[]][] = [[[32, 4099], [1, 4099]], [[3, 7, 1000], [3, 1, 1000]], [[2, 4, 8, 300], [2, 1, 1, 300]]];
      for (const [xShape, outShape] of shapes) {
        const size = xShape.reduce((p, d) => p * d, 1);
        const outSize = outShape.reduce((p, d) => p * d, 1);
        const { cpu, gpu } = runBoth({ x: testValues(size, 73), out: new Float32Array(outSize) }, (b, s) => b.reduce(kind, s.x!, xShape, s.out!, outShape, 0.5), ['out']);
        expect(gpu.out, `${kind} [${xShape}] → [${outShape}]`).toEqual(cpu.out);
      }
    }
  });

  it('split reductions one after another: the last block of each combines the chunks, bit-identical each time', () => {
    // Each launch counts its blocks on one device word that its last block resets: a launch that
    // found it non-zero would elect no block and leave its output unwritten.
    const x = testValues(3000 * 40, 73);
    const outs = { a: new Float32Array(40), b: new Float32Array(40), c: new Float32Array(40), d: new Float32Array(2 * 40) };
    const { cpu: c, gpu } = runBoth({ x, ...outs }, (b, st) => {
      b.reduce('sum', st.x!, [3000, 40], st.a!, [1, 40], 1);
      b.reduce('max', st.x!, [2, 1500, 40], st.d!, [2, 1, 40], 1);
      b.reduce('sum', st.x!, [3000, 40], st.b!, [1, 40], 1);
      b.reduce('sum', st.x!, [3000, 40], st.c!, [1, 40], 1);
    }, ['a', 'b', 'c', 'd']);
    expectClose(gpu.a!, c.a!, SUMS, 'first');
    expectClose(gpu.d!, c.d!, SUMS, 'max in between');
    expect(Array.from(gpu.b!)).toEqual(Array.from(gpu.a!));
    expect(Array.from(gpu.c!)).toEqual(Array.from(gpu.a!));
  });

  it('reduce max propagates NaN', () => {
    const x = testValues(200, 72);
    x[17] = NaN;
    const { gpu } = runBoth({ x, out: new Float32Array(2) }, (b, s) => b.reduce('max', s.x!, [2, 100], s.out!, [2, 1], 1), ['out']);
    expect(Number.isNaN(gpu.out![0]!)).toBe(true);
    expect(Number.isNaN(gpu.out![1]!)).toBe(false);
  });

  for (const log of [false, true]) {
    it(`${log ? 'log-' : ''}softmax forward and backward, short and long rows`, () => {
      // Warp-per-row kernels up to 1024 columns (partial last lane group too), block-per-row beyond.
      for (const [rows, cols] of [[33, 17], [70, 256], [9, 1000], [8, 3000]] as const) {
        const x = testValues(rows * cols, 81, 4);
        const g = testValues(rows * cols, 82);
        const size = rows * cols;
        const { cpu, gpu } = runBoth({ x, g, y: new Float32Array(size), gx: new Float32Array(size) }, (b, s) => {
          b.softmax(s.x!, s.y!, rows, cols, 0.8, 1.3, log, 0);
          b.softmaxGrad(s.y!, s.g!, s.gx!, rows, cols, 0.7, log);
        }, ['y', 'gx']);
        expectClose(gpu.y!, cpu.y!, { rel: 1e-5 }, `softmax ${rows}x${cols}`);
        // gx = y·(g − Σ g·y) cancels where g ≈ Σ g·y.
        expectClose(gpu.gx!, cpu.gx!, SUMS, `softmax grad ${rows}x${cols}`);
      }
    });
  }

  for (const affine of [true, false]) {
    it(`layerNorm forward and backward ${affine ? 'with' : 'without'} gamma and beta`, () => {
      for (const [rows, cols] of [[70, 96], [600, 64], [5, 1500]] as const) layerNormCase(affine, rows, cols);
    });
  }

  it('layerNorm with a residual add fused in (sumOf): the sum bit-identical to the binary add kernel, the norm as the CPU twin', () => {
    // Warp kernels (96 columns, 64, a partial lane group at 40) and the block kernel (1500).
    for (const [rows, cols] of [[70, 96], [600, 64], [33, 40], [5, 1500]] as const) {
      const size = rows * cols;
      const a = testValues(size, 95, 3);
      const bv = testValues(size, 96, 2);
      const gamma = positiveValues(cols, 97);
      const beta = testValues(cols, 98);
      const buffers = { a, b: bv, gamma, beta, x: new Float32Array(size), added: new Float32Array(size), out: new Float32Array(size), mean: new Float32Array(rows), rstd: new Float32Array(rows) };
      const { cpu: c, gpu } = runBoth(buffers, (b, s) => {
        b.layerNorm({ x: s.x!, gamma: s.gamma!, beta: s.beta!, out: s.out!, mean: s.mean!, rstd: s.rstd!, rows, cols, eps: 1e-5, sumOf: { a: s.a!, b: s.b!, scaleA: 0.6, scaleB: 0.8 } });
        b.binary('add', { storage: s.a!, offset: 0, strides: [cols, 1] }, { storage: s.b!, offset: 0, strides: [cols, 1] }, s.added!, [rows, cols], 0.6, 0.8);
      }, ['x', 'added', 'out', 'mean', 'rstd']);
      expect(Array.from(gpu.x!), `sum ${rows}x${cols}`).toEqual(Array.from(gpu.added!));
      expectClose(gpu.x!, c.x!, { rel: 1e-6, absOfMax: 1e-7 }, `sum ${rows}x${cols} against the CPU`);
      for (const name of ['out', 'mean', 'rstd']) expectClose(gpu[name]!, c[name]!, SUMS, `fused layerNorm ${rows}x${cols} ${name}`);
    }
  });

  for (const format of ['bf16', 'fp16'] as const) {
    it(`layerNorm reading rounded (${format}): the fused add's a and the backward's gy, bit for bit as on pre-rounded inputs, and as the CPU twin`, () => {
      const onGrid = (x: Float32Array) => {
        const y = Float32Array.from(x);
        quantise(y, y, parseFormat(format), { rounding: 'nearest', overflow: 'inf' });
        return y;
      };
      // Warp kernels, vector and scalar (64, 96, 40 columns) and the row kernels with the parameter partials (1500).
      for (const [rows, cols] of [[600, 64], [70, 96], [33, 40], [5, 1500]] as const) {
        const size = rows * cols;
        const a = testValues(size, 101, 3);
        const bv = testValues(size, 102, 2);
        const gy = testValues(size, 103);
        const gamma = positiveValues(cols, 104);
        const beta = testValues(cols, 105);
        const buffers = {
          a, aRounded: onGrid(a), b: bv, gy, gyRounded: onGrid(gy), gamma, beta,
          x: new Float32Array(size), x2: new Float32Array(size), out: new Float32Array(size), out2: new Float32Array(size),
          mean: new Float32Array(rows), rstd: new Float32Array(rows), mean2: new Float32Array(rows), rstd2: new Float32Array(rows),
          gx: new Float32Array(size), gg: new Float32Array(cols), gb: new Float32Array(cols), gx2: new Float32Array(size), gg2: new Float32Array(cols), gb2: new Float32Array(cols),
        };
        const { cpu: c, gpu } = runBoth(buffers, (b, st) => {
          const norm = (x: Storage, out: Storage, mean: Storage, rstd: Storage, a: Storage, readFormatA?: typeof format) =>
            b.layerNorm({ x, gamma: st.gamma!, beta: st.beta!, out, mean, rstd, rows, cols, eps: 1e-5, sumOf: { a, b: st.b!, scaleA: 0.6, scaleB: 0.8, readFormatA } });
          const grad = (gradOut: Storage, gx: Storage, gg: Storage, gb: Storage, gradOutReadFormat?: typeof format) =>
            b.layerNormGrad({
              x: st.x!, gamma: st.gamma!, mean: st.mean!, rstd: st.rstd!, gradOut, gradX: gx, gradGamma: gg, gradBeta: gb, rows, cols,
              gradXScale: 0.5, gradGammaScale: 2, gradBetaScale: 3, accumulateGradX: false, accumulateParams: false, gradOutReadFormat,
            });
          norm(st.x!, st.out!, st.mean!, st.rstd!, st.a!, format);
          norm(st.x2!, st.out2!, st.mean2!, st.rstd2!, st.aRounded!);
          grad(st.gy!, st.gx!, st.gg!, st.gb!, format);
          grad(st.gyRounded!, st.gx2!, st.gg2!, st.gb2!);
        }, ['x', 'x2', 'out', 'out2', 'gx', 'gx2', 'gg', 'gg2', 'gb', 'gb2']);
        for (const [name, twin] of [['x', 'x2'], ['out', 'out2'], ['gx', 'gx2'], ['gg', 'gg2'], ['gb', 'gb2']] as const) {
          expectSameBits(gpu[name]!, gpu[twin]!, `${format} ${rows}x${cols} ${name}`);
          expectClose(gpu[name]!, c[name]!, SUMS, `${format} ${rows}x${cols} ${name} against the CPU`);
        }
      }
    });
  }

  function layerNormCase(affine: boolean, rows: number, cols: number): void {
    const size = rows * cols;
    const x = testValues(size, 91, 3).map((v, i) => v + (i % cols === 0 ? 5 : 1));
    const gamma = positiveValues(cols, 92);
    const beta = testValues(cols, 93);
    const gy = testValues(size, 94);
    const { cpu, gpu } = runBoth(
      { x, gamma, beta, gy, out: new Float32Array(size), mean: new Float32Array(rows), rstd: new Float32Array(rows), gx: new Float32Array(size), gg: new Float32Array(cols), gb: new Float32Array(cols) },
      (b, s) => {
        b.layerNorm({ x: s.x!, gamma: affine ? s.gamma! : null, beta: affine ? s.beta! : null, out: s.out!, mean: s.mean!, rstd: s.rstd!, rows, cols, eps: 1e-5 });
        b.layerNormGrad({
          x: s.x!, gamma: affine ? s.gamma! : null, mean: s.mean!, rstd: s.rstd!, gradOut: s.gy!, gradX: s.gx!,
          gradGamma: affine ? s.gg! : null, gradBeta: affine ? s.gb! : null, rows, cols, gradXScale: 0.5, gradGammaScale: 2, gradBetaScale: 3,
          accumulateGradX: false, accumulateParams: false,
        });
      },
      ['out', 'mean', 'rstd', 'gx', 'gg', 'gb'],
    );
    for (const name of ['out', 'mean', 'rstd', 'gx', 'gg', 'gb']) expectClose(gpu[name]!, cpu[name]!, SUMS, `layerNorm ${rows}x${cols} ${name}`);
  }

  for (const log of [false, true]) {
    it(`causal ${log ? 'log-' : ''}softmax: warp and block kernels, masked entries exact`, () => {
      // [matrices·S, S] scores; S = 1500 takes the block-per-row kernel.
      for (const [matrices, s] of [[3, 17], [2, 256], [1, 1500]] as const) {
        const rows = matrices * s, size = rows * s;
        const x = testValues(size, 83, 4);
        const g = testValues(size, 84);
        const { cpu: c, gpu } = runBoth({ x, g, y: new Float32Array(size), gx: new Float32Array(size) }, (b, st) => {
          b.softmax(st.x!, st.y!, rows, s, 0.8, 1.3, log, s);
          b.softmaxGrad(st.y!, st.g!, st.gx!, rows, s, 0.7, log);
        }, ['y', 'gx']);
        // Early queries see a few keys, so log-probabilities near 0 occur (exactly 0 for query 0): the GPU
        // takes the max of float32 inScale·x, the CPU of float64, which leaves ~1e-7·|inScale·x| absolute.
        expectClose(gpu.y!, c.y!, { rel: 1e-5, abs: log ? 1e-6 : 0 }, `causal softmax ${rows}x${s}`);
        expectClose(gpu.gx!, c.gx!, SUMS, `causal softmax grad ${rows}x${s}`);
        let wrong = 0;
        for (let r = 0; r < rows; r++) {
          for (let col = (r % s) + 1; col < s; col++) if (gpu.y![r * s + col] !== (log ? Number.NEGATIVE_INFINITY : 0)) wrong++;
        }
        expect(wrong, `masked entries of ${rows}x${s}`).toBe(0);
      }
    });
  }

  describe('layerNormGrad: one-pass kernel, accumulate flags', () => {
    // 8192x512: float4 one-pass kernel over many row tiles; 7x33: scalar lanes, one partial tile;
    // 300x1500: block-per-row gradX with split column sums.
    const shapes = [[8192, 512], [7, 33], [300, 1500]] as const;
    for (const [rows, cols] of shapes) {
      for (const affine of [true, false]) {
        for (const [accumulateGradX, accumulateParams] of [[false, false], [true, true], [true, false]] as const) {
          it(`${rows}x${cols} ${affine ? 'with' : 'without'} gamma, accumulate gradX ${accumulateGradX} params ${accumulateParams}`, () => {
            layerNormGradCase(rows, cols, affine, accumulateGradX, accumulateParams, false);
          });
        }
        it(`${rows}x${cols} ${affine ? 'with' : 'without'} gamma, accumulating from a separate addend buffer, with a scaled copy of gradX`, () => {
          layerNormGradCase(rows, cols, affine, true, false, true);
        });
      }
    }
  });

  function layerNormGradCase(rows: number, cols: number, affine: boolean, accumulateGradX: boolean, accumulateParams: boolean, separateAddend: boolean): void {
    const size = rows * cols;
    const x = testValues(size, 95, 3).map((v, i) => v + (i % cols === 0 ? 5 : 1));
    const gamma = positiveValues(cols, 96);
    // The forward's statistics from the CPU twin, so both backends start from the same mean and rstd.
    const stats = runOn(cpu, { x, mean: new Float32Array(rows), rstd: new Float32Array(rows), out: new Float32Array(size) }, (s) => {
      cpu.layerNorm({ x: s.x!, gamma: null, beta: null, out: s.out!, mean: s.mean!, rstd: s.rstd!, rows, cols, eps: 1e-5 });
    }, ['mean', 'rstd']);
    const { cpu: c, gpu } = runBoth(
      {
        x, gamma, mean: stats.mean!, rstd: stats.rstd!, gy: testValues(size, 97),
        // Non-zero starting buffers, so a write and an accumulate differ.
        gx: testValues(size, 98), gg: testValues(cols, 99), gb: testValues(cols, 100), addend: testValues(size, 104), copy: new Float32Array(size),
      },
      (b, s) => b.layerNormGrad({
        x: s.x!, gamma: affine ? s.gamma! : null, mean: s.mean!, rstd: s.rstd!, gradOut: s.gy!, gradX: s.gx!,
        gradGamma: affine ? s.gg! : null, gradBeta: s.gb!, rows, cols, gradXScale: 0.5, gradGammaScale: 2, gradBetaScale: 3,
        accumulateGradX, accumulateParams, gradXAddend: separateAddend ? s.addend! : null,
        gradXCopy: separateAddend ? { target: s.copy!, scale: 0.25 } : null,
      }),
      ['gx', 'gg', 'gb', 'addend', 'copy'],
    );
    for (const name of ['gx', 'gg', 'gb']) expectClose(gpu[name]!, c[name]!, SUMS, `layerNormGrad ${rows}x${cols} ${name}`);
    // The copy is 0.25 (exact in float32) times the final gradX, addend included.
    if (separateAddend) expect(Array.from(gpu.copy!)).toEqual(Array.from(gpu.gx!, (v) => v * 0.25));
    // The addend is only read.
    expect(Array.from(gpu.addend!)).toEqual(Array.from(testValues(size, 104)));
  }

  it('gather and scatterAdd (repeated ids, a hot id, ids outside the table, a non-float32 scale): scatterAdd bit-identical to the CPU', () => {
    for (const [rows, dim, count] of [[50, 40, 300], [13, 130, 1000], [5008, 128, 2048]] as const) {
      const table = testValues(rows * dim, 101);
      // Every 7th id, with a third of them on row 3 (a frequent character).
      const ids = new Int32Array(count).map((_, i) => (i % 3 === 0 ? 3 : (i * 7) % rows));
      // scatterAdd skips ids past the table's end (gather refuses them on the CPU).
      const scatterIds = ids.slice();
      scatterIds[5] = rows;
      scatterIds[count - 1] = rows + 4;
      const gOut = testValues(count * dim, 102);
      const { cpu, gpu } = runBoth({ table, ids, scatterIds, gOut, out: new Float32Array(count * dim), gTable: testValues(rows * dim, 103) }, (b, s) => {
        b.gather(s.table!, s.ids!, s.out!, count, dim);
        b.scatterAdd(s.gOut!, s.scatterIds!, s.gTable!, count, dim, 1 / 3);
      }, ['out', 'gTable']);
      expectClose(gpu.out!, cpu.out!, { rel: 0 }, `gather ${rows}x${dim}`);
      expect(Array.from(gpu.gTable!), `scatterAdd ${rows}x${dim}`).toEqual(Array.from(cpu.gTable!));
    }
  });

  it('scatterAdd with REPRO_CUDA_ATOMIC_SCATTER=1: float atomics in any order (rel 1e-5)', () => {
    const rows = 50, dim = 40, count = 300;
    const ids = new Int32Array(count).map((_, i) => (i % 3 === 0 ? 3 : (i * 7) % rows));
    process.env.REPRO_CUDA_ATOMIC_SCATTER = '1';
    try {
      const { cpu, gpu } = runBoth({ ids, gOut: testValues(count * dim, 102), gTable: testValues(rows * dim, 103) }, (b, s) => b.scatterAdd(s.gOut!, s.ids!, s.gTable!, count, dim, 0.25), ['gTable']);
      expectClose(gpu.gTable!, cpu.gTable!, SUMS, 'scatterAdd (atomic)');
    } finally {
      delete process.env.REPRO_CUDA_ATOMIC_SCATTER;
    }
  });

  for (const masked of [false, true]) {
    it(`crossEntropy forward and backward ${masked ? 'with a row mask' : ''}`, () => {
      for (const [rows, vocab] of [[64, 27], [16, 5000]] as const) {
        const logits = testValues(rows * vocab, 111, 3);
        const labels = new Int32Array(rows).map((_, i) => (i * 13) % vocab);
        const mask = new Float32Array(rows).map((_, i) => (i % 5 === 0 ? 0 : i % 2 === 0 ? 1 : 0.5));
        const gLoss = testValues(rows, 112);
        const { cpu, gpu } = runBoth(
          { logits, labels, mask, gLoss, loss: new Float32Array(rows), lse: new Float32Array(rows), gx: new Float32Array(rows * vocab) },
          (b, s) => {
            b.crossEntropy({ logits: s.logits!, labels: s.labels!, mask: masked ? s.mask! : null, rows, vocab, loss: s.loss!, logSumExp: s.lse! });
            b.crossEntropyGrad({ logits: s.logits!, labels: s.labels!, mask: masked ? s.mask! : null, logSumExp: s.lse!, gradLoss: s.gLoss!, gradLogits: s.gx!, rows, vocab, scale: 0.1 });
          },
          ['loss', 'lse', 'gx'],
        );
        expectClose(gpu.loss!, cpu.loss!, { rel: 1e-5 }, `loss ${rows}x${vocab}`);
        expectClose(gpu.lse!, cpu.lse!, { rel: 1e-5 }, `logSumExp ${rows}x${vocab}`);
        expectClose(gpu.gx!, cpu.gx!, SUMS, `crossEntropy grad ${rows}x${vocab}`);
      }
    });
  }
});
