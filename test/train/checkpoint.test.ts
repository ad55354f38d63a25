import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReproError } from '../../src/errors.ts';
import { readCheckpoint, writeCheckpoint } from '../../src/train/checkpoint.ts';
import { tempDir } from './helpers.ts';

describe('checkpoint files', () => {
  it('round-trip meta and float32/int32 arrays exactly, leaving no temporary file', () => {
    const dir = tempDir();
    const file = join(dir, 'checkpoint.bin');
    const weights = Float32Array.from([1.5, -0, NaN, Infinity, 3e-40]);
    const arrays = new Map([
      ['param.w', { shape: [5], data: weights }],
      ['optim.step', { shape: [1], data: Int32Array.from([123456]) }],
      ['scalar', { shape: [], data: Float32Array.from([7]) }],
    ]);
    writeCheckpoint(file, { step: 12, nested: { ok: true } }, arrays);
    const loaded = readCheckpoint(file);
    expect(loaded.meta).toEqual({ step: 12, nested: { ok: true } });
    expect([...loaded.arrays.keys()]).toEqual(['param.w', 'optim.step', 'scalar']);
    expect(Array.from(loaded.arrays.get('param.w')!.data)).toEqual(Array.from(weights));
    expect(Object.is(loaded.arrays.get('param.w')!.data[1], -0)).toBe(true);
    expect(loaded.arrays.get('optim.step')!.data).toEqual(Int32Array.from([123456]));
    expect(loaded.arrays.get('scalar')!.shape).toEqual([]);
    expect(readdirSync(dir)).toEqual(['checkpoint.bin']);
  });

  it('reports a missing, foreign or truncated file as a ReproError naming it', () => {
    const dir = tempDir();
    const file = join(dir, 'checkpoint.bin');
    expect(() => readCheckpoint(file)).toThrow(ReproError);
    writeFileSync(file, 'hello world, not a checkpoint');
    expect(() => readCheckpoint(file)).toThrow(/checkpoint\.bin: not a readable checkpoint \(wrong magic bytes\)/);
    writeCheckpoint(file, {}, new Map([['a', { shape: [1000], data: new Float32Array(1000) }]]));
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 8));
    expect(() => readCheckpoint(file)).toThrow(/array a is truncated/);
  });
});
