import { describe, expect, it } from 'vitest';
import type { PrecisionConfig } from '../../src/config/schema.ts';
import * as nn from '../../src/nn/index.ts';
import * as T from '../../src/tensor/index.ts';

const config = (mode: PrecisionConfig['mode'], extra: Partial<PrecisionConfig> = {}): PrecisionConfig => ({
  mode,
  fp8_family: 'paper',
  rounding: 'nearest',
  master_weights: false,
  matmul: 'simulated',
  allow_tf32: false,
  ...extra,
});

function param(values: number[], shape = [values.length]): T.Tensor {
  const t = T.tensor(values, shape);
  t.requiresGrad = true;
  return t;
}

describe('precision policy', () => {
  it('fp32: every hook is the identity and GEMMs get no format tags', () => {
    const p = nn.precisionPolicy(config('fp32'));
    const x = T.tensor([1.0001, 2], [2]);
    expect(p.output(x)).toBe(x);
    expect(p.parameter(x)).toBe(x);
    expect(p.gemmInput(x)).toBe(x);
    expect(p.weightStorage).toBeNull();
    expect(p.gemmFormats).toEqual({});
  });

  it('fp8 (paper family): matmul inputs round to E4M3 forward, the output gradient to E5M2 backward', () => {
    const p = nn.precisionPolicy(config('fp8'));
    T.tidy(() => {
      // 1.0625 lies between E4M3's 1 and 1.125 (nearest-even: 1); 300 saturates at 240.
      const a = param([1.0625, 300], [1, 2]);
      const b = param([1, 1], [2, 1]);
      let seen: number[] = [];
      const y = p.matmul([a, b], ([aq, bq]) => {
        seen = Array.from(aq.toFloat32Array());
        return T.matmul(aq, bq);
      });
      expect(seen).toEqual([1, 240]);
      expect(y.item()).toBe(241);
      // 1.3 is not an E5M2 value (neighbours 1.25 and 1.5): the GEMM's backward sees 1.25.
      T.backward(y, T.tensor([1.3], [1, 1]));
      expect(Array.from(b.grad!.toFloat32Array())).toEqual([1.25, 300]);
      expect(Array.from(a.grad!.toFloat32Array())).toEqual([1.25, 1.25]);
      // nothing else is touched
      const z = T.tensor([1.0625], [1]);
      expect(p.output(z)).toBe(z);
      for (const t of [a, b]) t.grad!.dispose();
    });
    expect(nn.precisionPolicy(config('fp8', { matmul: 'native' })).gemmFormats).toEqual({ inputFormat: 'e4m3', gradFormat: 'e5m2' });
    expect(nn.precisionPolicy(config('fp8', { fp8_family: 'ocp' })).fp8!.forward.format.maxAbs).toBe(448);
  });

  it('fp16: op outputs and the gradients arriving at them round to FP16; overflow gives inf', () => {
    const p = nn.precisionPolicy(config('fp16'));
    T.tidy(() => {
      const x = param([1 + 2 ** -12, 70000, 2 ** -26]);
      const y = p.output(x);
      expect(Array.from(y.toFloat32Array())).toEqual([1, Infinity, 0]);
      T.backward(T.sum(T.mul(y, T.tensor([1 + 2 ** -12, 3, 3 * 2 ** -26], [3]))));
      expect(Array.from(x.grad!.toFloat32Array())).toEqual([1, 3, 2 ** -24]);
      x.grad!.dispose();
    });
  });

  it('fp16 without master weights: weights stored in FP16 (rounded at init), parameter gradients rounded', () => {
    const p = nn.precisionPolicy(config('fp16'));
    expect(p.weightStorage?.format.name).toBe('fp16');
    expect(p.parameterGradient?.format.name).toBe('fp16');
    const w = param([1 + 2 ** -13, 0.1]);
    p.initialiseWeight(w);
    expect(w.toFloat32Array()[0]).toBe(1);
    expect(w.toFloat32Array()[1]).toBe(Math.fround(0.0999755859375));
    T.tidy(() => {
      const used = p.parameter(w);
      T.backward(T.sum(T.mul(used, T.tensor([1 + 2 ** -12, 1], [2]))));
    });
    expect(w.grad!.toFloat32Array()[0]).toBe(1);
    w.grad!.dispose();
  });

  it('fp16 with master weights: the FP32 copy is rounded where it is used', () => {
    const p = nn.precisionPolicy(config('fp16', { master_weights: true }));
    expect(p.weightStorage).toBeNull();
    const w = param([1 + 2 ** -13]);
    p.initialiseWeight(w);
    expect(w.toFloat32Array()[0]).toBe(1 + 2 ** -13);
    T.tidy(() => expect(p.parameter(w).item()).toBe(1));
  });

  it('bf16 rounds to 8 significant bits', () => {
    const p = nn.precisionPolicy(config('bf16'));
    T.tidy(() => expect(p.output(T.tensor([1 + 2 ** -9], [1])).item()).toBe(1));
  });
});

describe('probe', () => {
  it('records a tapped activation and the gradient arriving at it; NO_TAP is the identity', () => {
    const records: { name: string; role: string; values: number[] }[] = [];
    const tap = nn.probeTap({ record: (name, role, values) => records.push({ name, role, values: Array.from(values) }) });
    T.tidy(() => {
      const x = param([1, 2, 3]);
      const y = tap('y', T.scale(x, 2));
      T.backward(T.sum(T.mul(y, T.tensor([5, 6, 7], [3]))));
      expect(Array.from(x.grad!.toFloat32Array())).toEqual([10, 12, 14]);
      x.grad!.dispose();
    });
    expect(records).toEqual([
      { name: 'y', role: 'activation', values: [2, 4, 6] },
      { name: 'y', role: 'gradient', values: [5, 6, 7] },
    ]);
    const t = T.tensor([1], [1]);
    expect(nn.NO_TAP('t', t)).toBe(t);
  });

  it('a mask selects the entries that count (tiled over leading axes)', () => {
    const records: number[][] = [];
    const tap = nn.probeTap({ record: (_name, _role, values) => records.push(Array.from(values)) });
    T.tidy(() => {
      tap('m', T.tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]), { mask: T.tensor([1, 0, 1, 1], [2, 2]) });
    });
    expect(records).toEqual([[1, 3, 4, 5, 7, 8]]);
  });
});
