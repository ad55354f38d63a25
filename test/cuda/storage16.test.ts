/**
 * 16-bit storage on CUDA: 2-byte buffers written by the unary and layer-norm kernels (store_as),
 * by copy16, and by write(); read back exactly; and read in place by the 16-bit GEMMs. Each must
 * give, bit for bit, the float32 result rounded to the format, i.e. what the products read
 * when they round float32 operands themselves.
 */
import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';
import { UNARY_KINDS } from '../../src/backend/cuda/kernels/elementwise.ts';
import { STORAGE16_UNARY_KINDS } from '../../src/backend/unary-rules.ts';
import { values } from '../tensor/gradcheck.ts';
import { cpu, cuda, noCudaReason } from './helpers.ts';

const FORMATS = ['bf16', 'fp16'] as const;

function onCuda<R>(body: () => R): R {
  const before = T.defaultBackend();
  T.setDefaultBackend(cuda!);
  try {
    return T.tidy(body);
  } finally {
    T.setDefaultBackend(before);
  }
}

/** Values across the formats' ranges: subnormals, ties, overflow, specials, odd length (scalar tail). */
function awkward(n: number, seed: number): Float32Array {
  const v = values(n, seed, -4, 4);
  const specials = [0, -0, Infinity, -Infinity, NaN, 65520, 65519, 7e4, 2 ** -24, 3 * 2 ** -26, 1 + 2 ** -8, 1 + 3 * 2 ** -9, 3e38, 1e-40];
  specials.forEach((s, i) => (v[i * 7] = s));
  return v;
}

describe.skipIf(cuda === null)(`16-bit storage on CUDA ${noCudaReason}`, () => {
  for (const format of FORMATS) {
    it(`${format}: write, copy16 and read give the CPU's rounding of every value`, () => {
      const x = awkward(1001, 1);
      const expected = T.tidy(() => T.copy16(T.tensor(x, [1001], { backend: cpu }), format).toFloat32Array());
      onCuda(() => {
        const before = cuda!.memoryStats().allocatedBytes;
        const written = T.tensor(x, [1001], { dtype: format });
        expect(cuda!.memoryStats().allocatedBytes - before).toBe(2 * 1001);
        expect(written.toFloat32Array()).toEqual(expected);
        expect(T.copy16(T.tensor(x, [1001]), format).toFloat32Array()).toEqual(expected);
        const filled = T.full([7], 1 + 2 ** -12, format).toFloat32Array();
        expect(filled).toEqual(T.tidy(() => T.full([7], 1 + 2 ** -12, format, cpu).toFloat32Array()));
        expect(filled[0]).toBe(1);
      });
    });

    it(`${format}: copies16 gives copy16 of every tensor in one launch`, () => {
      onCuda(() => {
        const xs = [5, 4099, 1, 3 * 4096 + 7].map((n, i) => T.tensor(awkward(n, 30 + i).map((v, j) => (j % 3 === 0 ? v * 3e4 : v)), [n]));
        T.copies16(xs, format).forEach((c, i) => expect(c.toFloat32Array(), `tensor ${i}`).toEqual(T.copy16(xs[i]!, format).toFloat32Array()));
      });
    });

    it(`${format}: every unary kernel writing 16 bits gives its float32 result rounded, with and without a read format`, () => {
      onCuda(() => {
        const x = T.tensor(awkward(4099, 2).map((v) => (Number.isFinite(v) ? v : 0.5)), [4099]);
        // copy writes 16 bits as copy16, tested above.
        for (const kind of UNARY_KINDS.filter((k) => k !== 'copy')) {
          for (const readFormat of [undefined, format]) {
            const options = { inScale: 0.7, scale: -1.3, readFormat };
            const op = (o: T.UnaryOptions) => unaryOf(kind, x, o);
            const stored = op({ ...options, outputFormat: format });
            expect(stored.dtype, kind).toBe(format);
            const rounded = T.copy16(op(options), format);
            expect(stored.toFloat32Array(), `${kind} read ${readFormat ?? 'f32'}`).toEqual(rounded.toFloat32Array());
          }
        }
      });
    });

    it(`${format}: layer norm (warp and block kernels, fused add) writing 16 bits gives its float32 result rounded`, () => {
      onCuda(() => {
        for (const cols of [24, 512, 1500]) {
          const x = T.tensor(values(9 * cols, 3, -3, 3), [9, cols]);
          const y = T.tensor(values(9 * cols, 4, -3, 3), [9, cols]);
          const gamma = T.tensor(values(cols, 5, 0.5, 1.5), [cols]);
          const beta = T.tensor(values(cols, 6, -1, 1), [cols]);
          const stored = T.layerNorm(x, gamma, beta, { outputFormat: format });
          expect(stored.toFloat32Array(), `cols ${cols}`).toEqual(T.copy16(T.layerNorm(x, gamma, beta), format).toFloat32Array());
          const fused = T.addLayerNorm(x, y, { scaleA: 0.5 }, gamma, beta, { outputFormat: format, aReadFormat: format }).normed;
          const plain = T.addLayerNorm(x, y, { scaleA: 0.5 }, gamma, beta, { aReadFormat: format }).normed;
          expect(fused.toFloat32Array(), `fused cols ${cols}`).toEqual(T.copy16(plain, format).toFloat32Array());
        }
      });
    });

    it(`${format}: the activations read 16-bit x and gradient and write a 16-bit gradient as the float32 kernels round them`, () => {
      onCuda(() => {
        const xValues = awkward(4099, 12).map((v) => (Number.isFinite(v) ? v : -0.25));
        const gValues = awkward(4099, 13).map((v) => (Number.isFinite(v) ? v : 0.75));
        for (const kind of STORAGE16_UNARY_KINDS) {
          for (const [x16, g16] of [[true, false], [false, true], [true, true]] as const) {
            const backend = cuda!;
            const x32 = T.tensor(xValues, [4099]);
            const g32 = T.tensor(gValues, [4099]);
            const x = x16 ? T.copy16(x32, format) : x32;
            const g = g16 ? T.copy16(g32, format) : g32;
            const gx16 = T.empty([4099], format);
            const gx32 = T.empty([4099], 'f32');
            backend.unaryGrad(kind, x.storage, g.storage, gx16.storage, 4099, 0.9, -1.1, format);
            backend.unaryGrad(kind, x32.storage, g32.storage, gx32.storage, 4099, 0.9, -1.1, format);
            expect(gx16.toFloat32Array(), `${kind} x16 ${x16} g16 ${g16}`).toEqual(T.copy16(gx32, format).toFloat32Array());
            const y16 = T.empty([4099], format);
            const y32 = T.empty([4099], 'f32');
            backend.unary(kind, x.storage, y16.storage, 4099, 0.9, 1.2, format);
            backend.unary(kind, x32.storage, y32.storage, 4099, 0.9, 1.2, format);
            expect(y16.toFloat32Array(), `${kind} forward x16 ${x16}`).toEqual(T.copy16(y32, format).toFloat32Array());
          }
        }
      });
    });

    it(`${format}: a product writing 16-bit C gives its float32 result rounded to nearest-even`, () => {
      onCuda(() => {
        const a = T.tensor(values(300 * 256, 14, -3, 3), [300, 256]);
        const b = T.tensor(values(256 * 520, 15, -3, 3), [256, 520]);
        const options = { scale: 0.7, inputFormat: format, roundInputs: true } as const;
        const c16 = T.matmul(a, b, { ...options, outputFormat: format });
        expect(c16.dtype).toBe(format);
        expect(c16.toFloat32Array()).toEqual(T.copy16(T.matmul(a, b, options), format).toFloat32Array());
        // Past FP16's range: infinity, as the rounding passes give.
        const big = { ...options, scale: 3e3 };
        expect(T.matmul(a, b, { ...big, outputFormat: format }).toFloat32Array()).toEqual(T.copy16(T.matmul(a, b, big), format).toFloat32Array());
      });
    });

    it(`${format}: the cross-entropy reads 16-bit logits and writes a 16-bit gradient as the float32 kernels round them`, () => {
      onCuda(() => {
        const [rows, vocab] = [37, 1003];
        const logits32 = T.copy16(T.tensor(values(rows * vocab, 16, -6, 6), [rows, vocab]), format);
        const exact = T.tensor(logits32.toFloat32Array(), [rows, vocab]);
        const labels = T.tensor(Int32Array.from({ length: rows }, (_, i) => (i * 31) % vocab), [rows]);
        const gradLoss = T.tensor(values(rows, 17, 0.5, 2), [rows]);
        const run = (logits: T.Tensor, gradType: 'f32' | T.Format16) => {
          const [loss, lse, gx] = [T.empty([rows]), T.empty([rows]), T.empty([rows, vocab], gradType)];
          cuda!.crossEntropy({ logits: logits.storage, labels: labels.storage, mask: null, rows, vocab, loss: loss.storage, logSumExp: lse.storage });
          cuda!.crossEntropyGrad({ logits: logits.storage, labels: labels.storage, mask: null, logSumExp: lse.storage, gradLoss: gradLoss.storage, gradLogits: gx.storage, rows, vocab, scale: 0.3 });
          return { loss: loss.toFloat32Array(), gx };
        };
        const stored = run(logits32, format);
        const float32 = run(exact, 'f32');
        expect(stored.loss).toEqual(float32.loss);
        expect(stored.gx.toFloat32Array()).toEqual(T.copy16(float32.gx, format).toFloat32Array());
      });
    });

    it(`${format}: attention reads 16-bit q, k, v and output gradient and writes 16-bit copies and gradients as the float32-stored kernels round them`, () => {
      onCuda(() => {
        for (const [S, D] of [[100, 64], [70, 36], [65, 30]] as const) {
          const [B, H] = [2, 3];
          const size = B * S * 3 * H * D;
          const qkv32 = T.tensor(T.copy16(T.tensor(values(size, 18 + D, -2, 2), [size]), format).toFloat32Array(), [size]);
          const qkv16 = T.copy16(qkv32, format);
          const g32 = T.tensor(T.copy16(T.tensor(values(B * S * H * D, 19, -1, 1), [B * S * H * D]), format).toFloat32Array(), [B * S * H * D]);
          const g16 = T.copy16(g32, format);
          const view = (t: T.Tensor, i: number) => ({ storage: t.storage, offset: i * H * D, strides: [S * 3 * H * D, D, 3 * H * D] as [number, number, number] });
          const outView = (t: T.Tensor) => ({ storage: t.storage, offset: 0, strides: [S * H * D, D, H * D] as [number, number, number] });
          const shape = { batch: B, heads: H, queries: S, keys: S, headDim: D, temperature: 0.2, outputScale: 1.3, causal: true, format };
          const run = (stored: boolean) => {
            const qkv = stored ? qkv16 : qkv32;
            const out = T.empty([B * S * H * D]);
            const out16 = T.empty([B * S * H * D], format);
            const lse = T.empty([B * H * S]);
            cuda!.attention({ ...shape, q: view(qkv, 0), k: view(qkv, 1), v: view(qkv, 2), out: outView(out), out16: stored ? outView(out16) : null, logSumExp: lse.storage });
            const grads = T.empty([size], stored ? format : 'f32');
            const delta = T.empty([B * H * S]);
            cuda!.attentionGrad({
              ...shape, q: view(qkv, 0), k: view(qkv, 1), v: view(qkv, 2), out: outView(out), logSumExp: lse.storage, gradOut: outView(stored ? g16 : g32),
              gradQ: view(grads, 0), gradK: view(grads, 1), gradV: view(grads, 2), delta: delta.storage, probsGradScale: 0.8, logitGradScale: 1.7, valueGradScale: 0.6,
            });
            return { out, out16, grads };
          };
          const stored = run(true);
          const float32 = run(false);
          expect(stored.out.toFloat32Array(), `out S ${S} D ${D}`).toEqual(float32.out.toFloat32Array());
          expect(stored.out16.toFloat32Array(), `out16 S ${S} D ${D}`).toEqual(T.copy16(float32.out, format).toFloat32Array());
          expect(stored.grads.toFloat32Array(), `grads S ${S} D ${D}`).toEqual(T.copy16(float32.grads, format).toFloat32Array());
        }
      });
    });

    it(`${format}: layer norm reads a 16-bit addend and output gradient and writes a 16-bit copy of its input gradient as the float32 kernels round them`, () => {
      onCuda(() => {
        for (const cols of [24, 30, 512, 1500]) {
          const rows = 9;
          const n = rows * cols;
          const rounded = (seed: number) => T.tensor(T.copy16(T.tensor(values(n, seed, -3, 3), [n]), format).toFloat32Array(), [n]);
          const a32 = rounded(20);
          const g32 = rounded(21);
          const b = T.tensor(values(n, 22, -2, 2), [n]);
          const gamma = T.tensor(values(cols, 23, 0.5, 1.5), [cols]);
          const beta = T.tensor(values(cols, 24, -1, 1), [cols]);
          const prior = T.tensor(values(n, 25), [n]);
          const run = (stored: boolean) => {
            const a = stored ? T.copy16(a32, format) : a32;
            const g = stored ? T.copy16(g32, format) : g32;
            const [x, out, mean, rstd] = [T.empty([n]), T.empty([n], stored ? format : 'f32'), T.empty([rows]), T.empty([rows])];
            cuda!.layerNorm({ x: x.storage, gamma: gamma.storage, beta: beta.storage, out: out.storage, mean: mean.storage, rstd: rstd.storage, rows, cols, eps: 1e-5,
              sumOf: { a: a.storage, b: b.storage, scaleA: 0.7, scaleB: 1.1, readFormatA: format } });
            const [gx, gg, gb] = [T.empty([n]), T.empty([cols]), T.empty([cols])];
            const copy = T.empty([n], stored ? format : 'f32');
            cuda!.layerNormGrad({
              x: x.storage, gamma: gamma.storage, mean: mean.storage, rstd: rstd.storage, gradOut: g.storage, gradX: gx.storage, gradGamma: gg.storage, gradBeta: gb.storage,
              rows, cols, gradXScale: 0.9, gradGammaScale: 1, gradBetaScale: 1, accumulateGradX: true, gradXAddend: prior.storage, accumulateParams: false,
              gradXCopy: stored ? null : { target: copy.storage, scale: 0.6 }, gradXCopy16: stored ? { target: copy.storage, scale: 0.6 } : null, gradOutReadFormat: format,
            });
            return [x, out, gx, gg, gb, copy];
          };
          const [x16, out16, gx16, gg16, gb16, copy16] = run(true);
          const [x32, out32, gx32, gg32, gb32, copy32] = run(false);
          for (const [mine, theirs, name] of [[x16, x32, 'sum'], [gx16, gx32, 'gradX'], [gg16, gg32, 'gradGamma'], [gb16, gb32, 'gradBeta']] as const) {
            expect(mine!.toFloat32Array(), `${name} cols ${cols}`).toEqual(theirs!.toFloat32Array());
          }
          expect(out16!.toFloat32Array(), `out cols ${cols}`).toEqual(T.copy16(out32!, format).toFloat32Array());
          expect(copy16!.toFloat32Array(), `copy cols ${cols}`).toEqual(T.copy16(copy32!, format).toFloat32Array());
        }
      });
    });

    it(`${format}: products reading 16-bit storage equal the products that pack float32 operands, forward and backward`, () => {
      const run = (stored: boolean) =>
        onCuda(() => {
          const x = T.tensor(values(256 * 192, 7, -2, 2), [256, 192]);
          x.requiresGrad = true;
          const w = T.tensor(values(320 * 192, 8, -1, 1), [320, 192]);
          w.requiresGrad = true;
          const h = T.gelu(x, stored ? { outputFormat: format } : {});
          const options = { transB: true, scale: 0.3, inputFormat: format, roundInputs: true } as const;
          const y = T.matmul(h, w, stored ? { ...options, readB: T.copy16(w, format) } : options);
          T.backward(T.sum(T.mul(y, T.tensor(values(256 * 320, 9), [256, 320]))));
          return [y, x.grad!, w.grad!].map((t) => t.toFloat32Array());
        });
      const stored = run(true);
      const packed = run(false);
      stored.forEach((a, i) => expect(a, `array ${i}`).toEqual(packed[i]));
    });
  }
});

function unaryOf(kind: (typeof UNARY_KINDS)[number], x: T.Tensor, options: T.UnaryOptions): T.Tensor {
  const ops: Record<string, (t: T.Tensor, o: T.UnaryOptions) => T.Tensor> = {
    abs: T.abs, exp: T.exp, log: T.log, sqrt: T.sqrt, rsqrt: T.rsqrt, reciprocal: T.reciprocal, square: T.square, tanh: T.tanh,
    sigmoid: T.sigmoid, relu: T.relu, gelu: T.gelu, geluTanh: (t, o) => T.gelu(t, { ...o, approximate: 'tanh' }), sin: T.sin, cos: T.cos,
  };
  return ops[kind]!(x, options);
}
