/**
 * Parity of the fused attention kernels with their CPU twins (src/backend/cpu/attention.ts).
 * The CPU sums in float64 and rounds once; the kernels sum in float32, tile by tile, with an
 * online softmax. Outputs are weighted means of v, so they agree to float32 precision; the
 * gradients are sums of up to S terms P·(dP − delta) that cancel, so they are compared relative
 * to the largest element of their array.
 */
import { describe, expect, it } from 'vitest';
import type { AttentionOperand, Storage } from '../../src/backend/backend.ts';
import { cuda, expectClose, noCudaReason, runBoth, testValues } from './helpers.ts';

const OUTPUT = { rel: 1e-5, absOfMax: 2e-6 };
const GRADIENT = { rel: 1e-4, absOfMax: 1e-5 };

interface Case {
  readonly B: number;
  readonly H: number;
  readonly S: number;
  readonly D: number;
  readonly causal: boolean;
  /** q, k, v packed in one [B, S, 3, H, D] tensor, or three [B, H, S, D] tensors. */
  readonly packed: boolean;
}

describe.skipIf(cuda === null)(`fused attention on CUDA ${noCudaReason}`, () => {
  const cases: Case[] = [
    { B: 2, H: 2, S: 256, D: 64, causal: true, packed: true },
    { B: 1, H: 3, S: 70, D: 64, causal: true, packed: false },
    { B: 2, H: 1, S: 45, D: 40, causal: false, packed: true },
    { B: 3, H: 2, S: 33, D: 16, causal: true, packed: true },
    { B: 1, H: 1, S: 5, D: 32, causal: false, packed: false },
  ];
  for (const c of cases) {
    it(`forward and backward match the CPU twin: B ${c.B} H ${c.H} S ${c.S} D ${c.D} ${c.causal ? 'causal' : 'full'} ${c.packed ? 'packed qkv' : 'separate q, k, v'}`, () => {
      const { B, H, S, D } = c;
      const n = B * H * S * D;
      const view = (name: string, offset: number, strides: [number, number, number]) => (s: Record<string, Storage>): AttentionOperand => ({ storage: s[name]!, offset, strides });
      const packed = [0, 1, 2].map((i) => view('qkv', i * H * D, [S * 3 * H * D, D, 3 * H * D]));
      const separate = ['q', 'k', 'v'].map((name) => view(name, 0, [H * S * D, S * D, D]));
      const [q, k, v] = c.packed ? packed : separate;
      const gradViews = c.packed ? [0, 1, 2].map((i) => view('gqkv', i * H * D, [S * 3 * H * D, D, 3 * H * D])) : ['gq', 'gk', 'gv'].map((name) => view(name, 0, [H * S * D, S * D, D]));
      const out = view('out', 0, [S * H * D, D, H * D]);
      const gradOut = view('gout', 0, [S * H * D, D, H * D]);
      const buffers = {
        ...(c.packed
          ? { qkv: testValues(3 * n, 1, 2), gqkv: new Float32Array(3 * n).fill(Number.NaN) }
          : { q: testValues(n, 2, 2), k: testValues(n, 3, 2), v: testValues(n, 4, 2), gq: new Float32Array(n), gk: new Float32Array(n), gv: new Float32Array(n) }),
        out: new Float32Array(n),
        gout: testValues(n, 5),
        lse: new Float32Array(B * H * S),
        delta: new Float32Array(B * H * S),
      };
      const shape = { batch: B, heads: H, queries: S, keys: S, headDim: D, temperature: 0.125, outputScale: 1.5, causal: c.causal };
      const grads = c.packed ? ['gqkv'] : ['gq', 'gk', 'gv'];
      const { cpu, gpu } = runBoth(
        buffers,
        (backend, s) => {
          backend.attention({ ...shape, q: q!(s), k: k!(s), v: v!(s), out: out(s), logSumExp: s.lse! });
          backend.attentionGrad({
            ...shape,
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
        },
        ['out', 'lse', 'delta', ...grads],
      );
      expectClose(gpu.out!, cpu.out!, OUTPUT, 'out');
      expectClose(gpu.lse!, cpu.lse!, OUTPUT, 'logSumExp');
      expectClose(gpu.delta!, cpu.delta!, GRADIENT, 'delta');
      for (const g of grads) {
        // Packed: the three gradient windows tile the buffer, so no NaN of the fill may survive.
        expect(Array.from(gpu[g]!).some(Number.isNaN), `${g} fully written`).toBe(false);
        expectClose(gpu[g]!, cpu[g]!, GRADIENT, g);
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
