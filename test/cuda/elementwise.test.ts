/**
 * Element-wise kernels, CUDA against the CPU twin on the same inputs.
 * Tolerance: the CUDA kernels compute in float32, the twin in float64 rounded once, so each value
 * may differ by a few float32 ulps (rel 1e-5). Where f has a zero (sin, cos, tanh', gelu…), the
 * float32 rounding of the scaled argument moves the result by ulps of the argument, not of the
 * result: 1e-6 of the array's largest value absorbs that.
 */
import { describe, expect, it } from 'vitest';
import type { BinaryKind, StridedView, UnaryKind } from '../../src/backend/backend.ts';
import { cuda, expectClose, expectSameBits, noCudaReason, positiveValues, runBoth, testValues } from './helpers.ts';

const ELEMENTWISE = { rel: 1e-5, absOfMax: 1e-6 };
const UNARY: readonly UnaryKind[] = ['copy', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'reciprocal', 'square', 'tanh', 'sigmoid', 'relu', 'gelu', 'geluTanh', 'sin', 'cos'];
const POSITIVE_ONLY = new Set<UnaryKind>(['log', 'sqrt', 'rsqrt', 'reciprocal']);
const BINARY: readonly BinaryKind[] = ['add', 'mul', 'div', 'max', 'min', 'eq', 'gt', 'ge'];

function view(storage: StridedView['storage'], offset: number, strides: number[]): StridedView {
  return { storage, offset, strides };
}

describe.skipIf(!cuda)(`CUDA element-wise kernels ${noCudaReason}`, () => {
  const n = 5000;

  for (const kind of UNARY) {
    it(`unary ${kind} forward and backward`, () => {
      const x = POSITIVE_ONLY.has(kind) ? positiveValues(n, 11) : testValues(n, 11, 3);
      const g = testValues(n, 12);
      const { cpu, gpu } = runBoth({ x, g, out: new Float32Array(n), gx: new Float32Array(n) }, (b, s) => {
        b.unary(kind, s.x!, s.out!, n, 0.75, 1.5);
        b.unaryGrad(kind, s.x!, s.g!, s.gx!, n, 0.75, -2);
      }, ['out', 'gx']);
      expectClose(gpu.out!, cpu.out!, ELEMENTWISE, `${kind} forward`);
      expectClose(gpu.gx!, cpu.gx!, ELEMENTWISE, `${kind} backward`);
    });
  }

  for (const format of ['bf16', 'fp16'] as const) {
    it(`unary with readFormat ${format}: x and the gradient read rounded, like the CPU twin; copy rounds bit for bit`, () => {
      const x = testValues(n, 21, 3);
      const g = testValues(n, 22);
      for (const kind of ['copy', 'relu', 'gelu', 'exp'] as const) {
        const { cpu, gpu } = runBoth({ x, g, out: new Float32Array(n), gx: new Float32Array(n), plain: new Float32Array(n) }, (b, s) => {
          b.unary(kind, s.x!, s.out!, n, 0.75, 1.5, format);
          b.unaryGrad(kind, s.x!, s.g!, s.gx!, n, 0.75, -2, format);
          b.unary(kind, s.x!, s.plain!, n, 0.75, 1.5);
        }, ['out', 'gx', 'plain']);
        expectClose(gpu.out!, cpu.out!, ELEMENTWISE, `${kind} ${format} forward`);
        expectClose(gpu.gx!, cpu.gx!, ELEMENTWISE, `${kind} ${format} backward`);
        // The rounding happened: the result differs from the unrounded read.
        expect(Array.from(gpu.out!).some((v, i) => v !== gpu.plain![i]), `${kind} ${format} rounds`).toBe(true);
      }
      const { cpu, gpu } = runBoth({ x, out: new Float32Array(n) }, (b, s) => b.unary('copy', s.x!, s.out!, n, 1, 1, format), ['out']);
      expectSameBits(gpu.out!, cpu.out!, `copy ${format}`);
    });
  }

  it('unary copy with unit scale copies bits exactly, in place too', () => {
    const x = testValues(n, 3);
    const { cpu, gpu } = runBoth({ x, out: new Float32Array(n) }, (b, s) => {
      b.unary('copy', s.x!, s.out!, n, 1, 1);
      b.unary('copy', s.x!, s.x!, n, 2, 0.5);
    }, ['out', 'x']);
    expectSameBits(gpu.out!, cpu.out!, 'copy');
    expectSameBits(gpu.x!, cpu.x!, 'copy in place');
  });

  for (const kind of BINARY) {
    it(`binary ${kind}: same shape, row broadcast, scalar and transposed views`, () => {
      const rows = 37, cols = 53;
      const a = testValues(rows * cols, 21, 2);
      // Equal values make eq/ge meaningful.
      const b = testValues(rows * cols, 22, 2).map((v, i) => (i % 7 === 0 ? a[i]! : v));
      const row = positiveValues(cols, 23);
      const scalar = new Float32Array([0.5]);
      const shape = [rows, cols];
      const size = rows * cols;
      const { cpu, gpu } = runBoth({ a, b, row, scalar, o1: new Float32Array(size), o2: new Float32Array(size), o3: new Float32Array(size), o4: new Float32Array(size) }, (be, s) => {
        be.binary(kind, view(s.a!, 0, [cols, 1]), view(s.b!, 0, [cols, 1]), s.o1!, shape, 1.5, 0.5);
        be.binary(kind, view(s.a!, 0, [cols, 1]), view(s.row!, 0, [0, 1]), s.o2!, shape, 1, 2);
        be.binary(kind, view(s.scalar!, 0, [0, 0]), view(s.b!, 0, [cols, 1]), s.o3!, shape, -1, 1);
        // a read as its transpose [cols, rows]: a 2-D strided case that does not collapse.
        be.binary(kind, view(s.a!, 0, [1, cols]), view(s.b!, 0, [rows, 1]), s.o4!, [cols, rows], 1, 1);
      }, ['o1', 'o2', 'o3', 'o4']);
      for (const o of ['o1', 'o2', 'o3', 'o4']) expectClose(gpu[o]!, cpu[o]!, ELEMENTWISE, `${kind} ${o}`);
    });
  }

  it('binary over a 4-D broadcast with an offset view', () => {
    const shape = [3, 4, 5, 6];
    const size = 360;
    const a = testValues(size + 7, 31);
    const b = testValues(4 * 6, 32);
    const { cpu, gpu } = runBoth({ a, b, out: new Float32Array(size) }, (be, s) => {
      be.binary('mul', view(s.a!, 7, [120, 30, 6, 1]), view(s.b!, 0, [0, 6, 0, 1]), s.out!, shape, 2, 1);
    }, ['out']);
    expectClose(gpu.out!, cpu.out!, ELEMENTWISE, 'mul 4-D');
  });

  it('float4 paths: broadcast along and across the inner axis, head-split permute, accumulate, odd lengths', () => {
    const [b, s1, h, d] = [2, 6, 3, 8];
    const size = b * s1 * h * d;
    const x = testValues(size, 33);
    const y = testValues(size, 34);
    const perRow = testValues(b * s1 * h, 35);
    const perCol = testValues(d, 36);
    const odd = testValues(1003, 37);
    const { cpu, gpu } = runBoth(
      { x, y, perRow, perCol, odd, o1: new Float32Array(size), o2: new Float32Array(size), o3: new Float32Array(size), o4: testValues(size, 38), o5: new Float32Array(1003), o6: new Float32Array(1003), o7: new Float32Array(size) },
      (be, st) => {
        const shape = [b * s1 * h, d];
        be.binary('add', view(st.x!, 0, [d, 1]), view(st.perCol!, 0, [0, 1]), st.o1!, shape, 1, 0.5);
        // one value per row repeated along the inner axis (inner stride 0)
        be.binary('mul', view(st.x!, 0, [d, 1]), view(st.perRow!, 0, [1, 0]), st.o2!, shape, 2, 1);
        // [B, S, H, D] → [H, B, S, D]: D contiguous on both sides
        be.copy(view(st.y!, 0, [d, s1 * h * d, h * d, 1]), view(st.o3!, 0, [b * s1 * d, s1 * d, d, 1]), [h, b, s1, d], 1, false);
        be.copy(view(st.y!, 0, [d, s1 * h * d, h * d, 1]), view(st.o4!, 0, [b * s1 * d, s1 * d, d, 1]), [h, b, s1, d], -1.5, true);
        be.unary('tanh', st.odd!, st.o5!, 1003, 0.5, 2);
        be.unaryGrad('gelu', st.odd!, st.odd!, st.o6!, 1003, 0.5, 2);
        be.where(view(st.perRow!, 0, [1, 0]), view(st.x!, 0, [d, 1]), view(st.y!, 0, [d, 1]), st.o7!, shape);
      },
      ['o1', 'o2', 'o3', 'o4', 'o5', 'o6', 'o7'],
    );
    for (const o of ['o1', 'o2', 'o4', 'o5', 'o6']) expectClose(gpu[o]!, cpu[o]!, ELEMENTWISE, `float4 ${o}`);
    expectSameBits(gpu.o3!, cpu.o3!, 'head-split permute');
    expectSameBits(gpu.o7!, cpu.o7!, 'where with a repeated condition');
  });

  it('where with broadcast condition', () => {
    const rows = 20, cols = 30;
    const cond = new Float32Array(cols).map((_, i) => (i % 3 === 0 ? 0 : i % 3 === 1 ? 1 : -0));
    const a = testValues(rows * cols, 41);
    const b = testValues(rows * cols, 42);
    const { cpu, gpu } = runBoth({ cond, a, b, out: new Float32Array(rows * cols) }, (be, s) => {
      be.where(view(s.cond!, 0, [0, 1]), view(s.a!, 0, [cols, 1]), view(s.b!, 0, [1, rows]), s.out!, [rows, cols]);
    }, ['out']);
    expectSameBits(gpu.out!, cpu.out!, 'where');
  });

  it('copy: strided gather, scaled, accumulate into distinct and into repeated destinations', () => {
    const src = testValues(600, 51);
    const dst = testValues(600, 52);
    const small = testValues(30, 53);
    const ids = new Int32Array([1, 2, 3]);
    const { cpu, gpu } = runBoth({ src, dst, small, ids, d2: new Float32Array(600), d3: testValues(600, 54) }, (be, s) => {
      // transpose a 20×30 block into d2
      be.copy(view(s.src!, 0, [1, 20]), view(s.d2!, 0, [20, 1]), [30, 20], 1, false);
      // scaled copy into every other element of dst
      be.copy(view(s.src!, 1, [2]), view(s.dst!, 0, [2]), [300], -0.5, false);
      // accumulate into distinct elements
      be.copy(view(s.src!, 0, [30, 1]), view(s.d3!, 0, [30, 1]), [20, 30], 2, true);
      // accumulate a [20, 30] gradient into a broadcast [30] destination (repeats: atomic path)
      be.copy(view(s.src!, 0, [30, 1]), view(s.small!, 0, [0, 1]), [20, 30], 1, true);
      // int32 storage copies as raw words
      be.copy(view(s.ids!, 0, [1]), view(s.ids!, 0, [1]), [3], 1, false);
    }, ['d2', 'dst', 'd3', 'small', 'ids']);
    expectSameBits(gpu.d2!, cpu.d2!, 'transpose copy');
    expectClose(gpu.dst!, cpu.dst!, ELEMENTWISE, 'scaled copy');
    expectClose(gpu.d3!, cpu.d3!, ELEMENTWISE, 'accumulate');
    // 20 float32 atomic additions in any order against one float64 sum.
    expectClose(gpu.small!, cpu.small!, { rel: 1e-5, absOfMax: 1e-6 }, 'accumulate with repeats');
    expect(Array.from(gpu.ids!)).toEqual([1, 2, 3]);
  });

  it('fill float32 and int32 ranges, write at an offset, read back', () => {
    const { cpu, gpu } = runBoth({ f: testValues(100, 61), i: new Int32Array(100).fill(9) }, (be, s) => {
      be.fill(s.f!, 10, 50, -2.5);
      be.fill(s.i!, 5, 20, 7.9);
      be.write(s.f!, new Float32Array([1, 2, 3]), 97);
      be.write(s.i!, new Int32Array([-4, 5]), 0);
    }, ['f', 'i']);
    expectSameBits(gpu.f!, cpu.f!, 'fill f32');
    expect(Array.from(gpu.i!)).toEqual(Array.from(cpu.i!));
  });

  it('rejects a view that reaches outside its storage', () => {
    const backend = cuda!;
    const a = backend.alloc(10, 'f32');
    const out = backend.alloc(20, 'f32');
    expect(() => backend.binary('add', view(a, 0, [1]), view(a, 0, [1]), out, [20], 1, 1)).toThrow(RangeError);
    backend.release(a);
    backend.release(out);
  });
});
