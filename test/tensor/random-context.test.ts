import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.ts';

describe('RandomContext', () => {
  it('dispose releases the device epoch counter; a later use starts a fresh one at epoch 0', () => {
    const backend = T.cpuBackend();
    const before = backend.memoryStats().allocatedBytes;
    const ctx = T.isolated(() => {
      T.setDefaultBackend(backend);
      const c = new T.RandomContext(3);
      c.beginStep();
      c.beginStep();
      return c;
    });
    expect(backend.memoryStats().allocatedBytes).toBe(before + 4);
    expect(backend.read(ctx.epoch())[0]).toBe(2);
    ctx.dispose();
    expect(backend.memoryStats().allocatedBytes).toBe(before);
    const fresh = T.isolated(() => (T.setDefaultBackend(backend), ctx.epoch()));
    expect(backend.read(fresh)[0]).toBe(0);
    ctx.dispose();
    expect(backend.memoryStats().allocatedBytes).toBe(before);
  });
});
