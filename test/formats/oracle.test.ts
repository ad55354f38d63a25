import { describe, expect, it } from 'vitest';
import { quantise } from '../../src/formats/quantise.ts';
import { parseFormat } from '../../src/formats/registry.ts';
import { fillRandomBits } from '../../src/tensor/philox.ts';
import { buildOracle } from './oracle.ts';

/**
 * Nearest-even quantise against the enumeration oracle on random float32 bit patterns plus
 * every neighbour midpoint (and the float32 values either side of it) of the format.
 */
const FORMATS = [
  'e2m1', // §8.11 unit-test format
  'e3m0', // no mantissa: ties break on the exponent's parity
  'e4m3-paper',
  'e5m2-paper',
  'e5m10', // paper FPFormat(5,10), one binade below IEEE half
  'e4m3',
  'e5m2',
  'fp16',
  'bf16',
  'e8m0', // bias 128: reaches float32's subnormals
  'e8m3-b140', // normal range extends into float32 subnormals
  'e6m4-b20',
  'e1m2',
];

function probeInputs(format: string): Float32Array {
  const oracle = buildOracle(parseFormat(format));
  const values: number[] = [];
  const f32 = (v: number): number => Math.fround(v);
  const next = (v: number, dir: 1 | -1): number => {
    const b = new Float32Array([v]);
    const u = new Int32Array(b.buffer);
    u[0]! += dir;
    return b[0]!;
  };
  // Walk the grid: every value, every midpoint, and the float32s just around each midpoint.
  let v = 0;
  for (let k = 0; k < 70000; k++) {
    const { hi } = oracle.neighbours(next(f32(v), 1));
    const mid = f32((v + hi) / 2);
    values.push(v, mid, next(mid, 1), mid > 0 ? next(mid, -1) : 0);
    if (hi === v || hi > 3.4e38) break;
    v = hi;
  }
  const random = new Uint32Array(20000);
  fillRandomBits(random, 2024, 77);
  const all = new Float32Array(values.length * 2 + random.length);
  all.set(values);
  all.set(values.map((x) => -x), values.length);
  all.set(new Float32Array(random.buffer), values.length * 2);
  return all;
}

describe.each(FORMATS)('nearest-even %s', (name) => {
  const format = parseFormat(name);
  const oracle = buildOracle(format);
  const inputs = probeInputs(name);

  it.each(['saturate', 'inf'] as const)('agrees with the oracle (overflow %s)', (overflow) => {
    const out = new Float32Array(inputs.length);
    quantise(inputs, out, format, { rounding: 'nearest', overflow });
    const mismatches: string[] = [];
    for (let i = 0; i < inputs.length; i++) {
      const want = Math.fround(oracle.nearestEven(inputs[i]!, overflow));
      if (!Object.is(out[i], want) && !(Number.isNaN(want) && Number.isNaN(out[i]))) {
        mismatches.push(`${inputs[i]}: got ${out[i]}, want ${want}`);
      }
    }
    expect(mismatches.slice(0, 8)).toEqual([]);
  });

  it('stochastic rounding always lands on a grid neighbour (overflow saturate)', () => {
    const out = new Float32Array(inputs.length);
    quantise(inputs, out, format, { rounding: 'stochastic', overflow: 'saturate', seed: 99, stream: 1 });
    const mismatches: string[] = [];
    for (let i = 0; i < inputs.length; i++) {
      const x = inputs[i]!;
      if (Number.isNaN(x)) {
        if (!Number.isNaN(out[i])) mismatches.push(`NaN became ${out[i]}`);
        continue;
      }
      const sign = x < 0 || Object.is(x, -0) ? -1 : 1;
      const { lo, hi } = oracle.neighbours(Math.abs(x));
      const allowed = [lo, hi].map((v) => sign * Math.fround(Math.min(v, oracle.maxAbs)));
      if (!allowed.some((v) => Object.is(v, out[i]))) mismatches.push(`${x}: got ${out[i]}, want one of ${allowed}`);
    }
    expect(mismatches.slice(0, 8)).toEqual([]);
  });
});
