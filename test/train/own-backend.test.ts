import { describe, expect, it } from 'vitest';
import { createOwnBackend } from '../../src/backend/select.ts';
import { cudaAvailability } from '../../src/backend/cuda/index.ts';
import { ReproError } from '../../src/errors.ts';
import * as T from '../../src/tensor/index.ts';

const gpu = cudaAvailability().available;

describe('createOwnBackend (a run’s own backend, as sweep lanes use)', () => {
  it('cpu: the shared CPU backend, nothing to give back', async () => {
    const own = await createOwnBackend('cpu');
    expect(own.backend).toBe(T.cpuBackend());
    own.release();
  });

  it.skipIf(gpu)('without a GPU: auto falls back to the CPU, cuda is a one-line ReproError', async () => {
    expect((await createOwnBackend('auto')).backend).toBe(T.cpuBackend());
    const failure = await createOwnBackend('cuda').catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ReproError);
    expect((failure as Error).message).toMatch(/^--device cuda: [^\n]+$/);
  });

  it.skipIf(!gpu)('with a GPU: every call gives a CUDA backend of its own', async () => {
    const [a, b] = [await createOwnBackend('cuda'), await createOwnBackend('auto')];
    expect(a.backend.name).toBe('cuda');
    expect(b.backend.name).toBe('cuda');
    expect(a.backend).not.toBe(b.backend);
    a.release();
    b.release();
  });
});
