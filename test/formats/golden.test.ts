import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeCode, encodeValue } from '../../src/formats/codes.ts';
import { quantise } from '../../src/formats/quantise.ts';
import { parseFormat } from '../../src/formats/registry.ts';

/** PyTorch's casts (golden/README.md): round-to-nearest-even, overflow as that torch version does. */
interface Golden {
  inputs: { bits: number[]; tags: string[] };
  outputs: Record<string, { value: (number | string)[]; bits: number[] }>;
}

const golden = JSON.parse(readFileSync(new URL('../fixtures/golden/fp8.json', import.meta.url), 'utf8')) as Golden;
const TORCH_NAMES = { e4m3: 'float8_e4m3fn', e5m2: 'float8_e5m2', fp16: 'float16', bf16: 'bfloat16' } as const;

function goldenNumber(v: number | string): number {
  if (v === 'nan') return NaN;
  if (v === 'inf') return Infinity;
  if (v === '-inf') return -Infinity;
  if (typeof v !== 'number') throw new Error(`unexpected golden value ${v}`);
  return v;
}

const inputs = new Float32Array(Uint32Array.from(golden.inputs.bits).buffer);

describe.each(Object.entries(TORCH_NAMES))('%s matches torch bit for bit', (name, torchName) => {
  const format = parseFormat(name);
  const expected = golden.outputs[torchName]!;
  const out = new Float32Array(inputs.length);
  quantise(inputs, out, format, { rounding: 'nearest', overflow: 'inf' });
  const outBits = new Uint32Array(out.buffer);

  it('float32 values, including signed zeros, subnormals, ties and overflow', () => {
    const expectedValues = new Float32Array(expected.value.map(goldenNumber));
    const expectedBits = new Uint32Array(expectedValues.buffer);
    const mismatches: string[] = [];
    for (let i = 0; i < inputs.length; i++) {
      const same = Number.isNaN(expectedValues[i]) ? Number.isNaN(out[i]) : outBits[i] === expectedBits[i];
      if (!same) mismatches.push(`${inputs[i]} [${golden.inputs.tags[i]}]: got ${out[i]}, torch ${expectedValues[i]}`);
    }
    expect(mismatches.slice(0, 10)).toEqual([]);
    expect(inputs.length).toBeGreaterThan(2000);
  });

  it('raw codes: ours encode to torch bits, torch bits decode to torch values', () => {
    const mismatches: string[] = [];
    for (let i = 0; i < inputs.length; i++) {
      const torchValue = goldenNumber(expected.value[i]!);
      const decoded = decodeCode(expected.bits[i]!, format);
      if (!Object.is(decoded, torchValue)) mismatches.push(`decode ${expected.bits[i]} = ${decoded}, torch ${torchValue}`);
      // NaN payloads differ between torch's code paths; any NaN code is a NaN.
      if (!Number.isNaN(out[i])) {
        const code = encodeValue(out[i]!, format);
        if (code !== expected.bits[i]) mismatches.push(`encode ${out[i]} = ${code}, torch ${expected.bits[i]}`);
      }
    }
    expect(mismatches.slice(0, 10)).toEqual([]);
  });
});
