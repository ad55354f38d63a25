/**
 * Parity of the fused attention kernels with their CPU twins (src/backend/cpu/attention.ts).
 * The CPU sums in float64 and rounds once; the kernels sum in float32, tile by tile, with an
 * online softmax. Outputs are weighted means of v, so they agree to float32 precision; the
 * gradients are sums of up to S terms P·(dP − delta) that cancel, so they are compared relative
 * to the largest element of their array.
 * 16-bit formats (tensor-core kernels): a probability or score gradient whose float32 value sits
 * within summation error of a rounding boundary of the format rounds to the neighbouring value
 * on one side, which moves that product term by one step of the format (2^-8 relative for BF16,
 * 2^-11 for FP16). Such flips are rare, so the 16-bit tolerances are a small fraction of each
 * array's largest element; a missing rounding or a wrong fragment is caught by the check that
 * the kernels are closer to the rounding twin than to the float32 one.
 */
import { describe, expect, it } from 'vitest';
import type { Format16, AttentionOperand, Backend, Storage } from '../../src/backend/backend.ts';
import { quantise } from '../../src/formats/quantise.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import { cpu as cpuBackend, cuda, expectClose, noCudaReason, runBoth, runOn, testValues, type HostArray } from './helpers.ts';

const OUTPUT = { rel: 1e-5, absOfMax: 2e-6 };
const GRADIENT = { rel: 1e-4, absOfMax: 1e-5 };
const OUTPUT16 = { bf16: { rel: 0, absOfMax: 4e-3 }, fp16: { rel: 0, absOfMax: 1e-3 } };
const GRADIENT16 = { bf16: { rel: 0, absOfMax: 1e-2 }, fp16: { rel: 0, absOfMax: 2e-3 } };

interface Case {
  readonly B: number;
  readonly H: number;
  readonly S: number;
  readonly D: number;
  readonly causal: boolean;
  /** q, k, v packed in one [B, S, 3, H, D] tensor, or three [B, H, S, D] tensors. */
  readonly packed: boolean;
  /** Keys (and values) per head when not causal; default S. */
  readonly keys?: number;
  readonly format?: Format16;
}

function worstDifference(a: HostArray, b: HostArray): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe.skipIf(cuda === null)(`fused attention on CUDA ${noCudaReason}`, () => {
  const cases: Case[] = [
    { B: 2, H: 2, S: 256, D: 64, causal: true, packed: true },
    { B: 1, H: 3, S: 70, D: 64, causal: true, packed: false },
    { B: 2, H: 1, S: 45, D: 40, causal: false, packed: true },
    { B: 3, H: 2, S: 33, D: 16, causal: true, packed: true },
    { B: 1, H: 1, S: 5, D: 32, causal: false, packed: false },
    { B: 2, H: 2, S: 256, D: 64, causal: true, packed: true, format: 'bf16' },
    { B: 2, H: 2, S: 256, D: 64, causal: true, packed: true, format: 'fp16' },
    { B: 1, H: 3, S: 100, D: 64, causal: true, packed: false, format: 'bf16' },
    { B: 2, H: 1, S: 70, keys: 130, D: 40, causal: false, packed: false, format: 'bf16' },
    { B: 1, H: 2, S: 45, D: 16, causal: false, packed: true, format: 'fp16' },
    { B: 3, H: 1, S: 33, D: 24, causal: true, packed: true, format: 'fp16' },
  ];
  /** The buffers and the forward-then-backward call of one case. */
  function setUp(c: Case, inputs: (values: Float32Array) => Float32Array = (x) => x) {
    const { B, H, S, D } = c;
    const keys = c.keys ?? S;
    const n = B * H * S * D;
    const nk = B * H * keys * D;
    const view = (name: string, offset: number, strides: [number, number, number]) => (s: Record<string, Storage>): AttentionOperand => ({ storage: s[name]!, offset, strides });
    const packed = [0, 1, 2].map((i) => view('qkv', i * H * D, [S * 3 * H * D, D, 3 * H * D]));
    const separate = (names: string[]) => names.map((name, i) => view(name, 0, [H * (i === 0 ? S : keys) * D, (i === 0 ? S : keys) * D, D]));
    const [q, k, v] = c.packed ? packed : separate(['q', 'k', 'v']);
    const gradViews = c.packed ? [0, 1, 2].map((i) => view('gqkv', i * H * D, [S * 3 * H * D, D, 3 * H * D])) : separate(['gq', 'gk', 'gv']);
    const out = view('out', 0, [S * H * D, D, H * D]);
    const gradOut = view('gout', 0, [S * H * D, D, H * D]);
    const buffers = {
      ...(c.packed
        ? { qkv: inputs(testValues(3 * n, 1, 2)), gqkv: new Float32Array(3 * n).fill(Number.NaN) }
        : { q: inputs(testValues(n, 2, 2)), k: inputs(testValues(nk, 3, 2)), v: inputs(testValues(nk, 4, 2)), gq: new Float32Array(n), gk: new Float32Array(nk), gv: new Float32Array(nk) }),
      out: new Float32Array(n),
      gout: inputs(testValues(n, 5)),
      lse: new Float32Array(B * H * S),
      delta: new Float32Array(B * H * S),
    };
    const shape = { batch: B, heads: H, queries: S, keys, headDim: D, temperature: 0.125, outputScale: 1.5, causal: c.causal, format: c.format };
    const grads = c.packed ? ['gqkv'] : ['gq', 'gk', 'gv'];
    // internals 'float32': the same call without the case's format (the rounding-free twin).
    const call = (backend: Backend, s: Record<string, Storage>, internals: 'case' | 'float32' = 'case') => {
      const format = internals === 'case' ? c.format : undefined;
      backend.attention({ ...shape, format, q: q!(s), k: k!(s), v: v!(s), out: out(s), logSumExp: s.lse! });
      backend.attentionGrad({
        ...shape,
        format,
        q: q!(s),
        k: k!(s),
        v: v!(s),
        out: out(s),
        logSumExp: s.lse!,
        gradOut: gradOut(s),
        gradQ: gradViews[0]!(s),
        gradK: gradViews[1]!(s),
        gradV: gradViews[2]!(s),
        delta: s.delta!,
        probsGradScale: 0.8,
        logitGradScale: 0.3,
        valueGradScale: 1.7,
      });
    };
    return { buffers, grads, call };
  }

  for (const c of cases) {
    it(`forward and backward match the CPU twin: ${c.format ?? 'fp32'} B ${c.B} H ${c.H} S ${c.S}${c.keys ? ` keys ${c.keys}` : ''} D ${c.D} ${c.causal ? 'causal' : 'full'} ${c.packed ? 'packed qkv' : 'separate q, k, v'}`, () => {
      const { buffers, grads, call } = setUp(c);
      const output = c.format ? OUTPUT16[c.format] : OUTPUT;
      const gradient = c.format ? GRADIENT16[c.format] : GRADIENT;
      const { cpu, gpu } = runBoth(buffers, (backend, s) => call(backend, s), ['out', 'lse', 'delta', ...grads]);
      expectClose(gpu.out!, cpu.out!, output, 'out');
      expectClose(gpu.lse!, cpu.lse!, OUTPUT, 'logSumExp');
      expectClose(gpu.delta!, cpu.delta!, c.format ? gradient : GRADIENT, 'delta');
      for (const g of grads) {
        // Packed: the three gradient windows tile the buffer, so no NaN of the fill may survive.
        expect(Array.from(gpu[g]!).some(Number.isNaN), `${g} fully written`).toBe(false);
        expectClose(gpu[g]!, cpu[g]!, gradient, g);
      }
    });
  }

  for (const format of ['bf16', 'fp16'] as const) {
    it(`${format}: the kernels round P and dS as the rounding twin does (closer to it than to float32 internals by far)`, () => {
      // Inputs already on the format's grid, so the twins differ only in the internal roundings.
      const onGrid = (x: Float32Array) => {
        quantise(x, x, parseFormat(format), { rounding: 'nearest', overflow: 'inf' });
        return x;
      };
      const { buffers, grads, call } = setUp({ B: 2, H: 2, S: 256, D: 64, causal: true, packed: true, format }, onGrid);
      const outputs = ['out', ...grads];
      const gpu = runOn(cuda!, buffers, (s) => call(cuda!, s), outputs);
      const rounding = runOn(cpuBackend, buffers, (s) => call(cpuBackend, s), outputs);
      const float32 = runOn(cpuBackend, buffers, (s) => call(cpuBackend, s, 'float32'), outputs);
      for (const name of outputs) {
        const own = worstDifference(gpu[name]!, rounding[name]!);
        const other = worstDifference(gpu[name]!, float32[name]!);
        expect(own, `${name}: ${own} against the rounding twin, ${other} against float32`).toBeLessThan(other / 4);
      }
    });
  }

  it('refuses head sizes above 64', () => {
    const s = cuda!.alloc(4 * 65, 'f32');
    const o = { storage: s, offset: 0, strides: [0, 0, 65] as [number, number, number] };
    expect(() => cuda!.attention({ batch: 1, heads: 1, queries: 4, keys: 4, headDim: 65, temperature: 1, outputScale: 1, causal: false, q: o, k: o, v: o, out: o, logSumExp: s })).toThrow(/head size 65/);
    cuda!.release(s);
  });
});
