import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tryCreateCudaBackend } from '../../src/backend/cuda/index.ts';
import { loadExperiment } from '../../src/config/load.ts';
import { runExperiment } from '../../src/train/run-experiment.ts';

const cuda = tryCreateCudaBackend();
const reason = typeof cuda === 'string' ? cuda : null;

describe.skipIf(reason !== null)('training on CUDA', () => {
  const run = async (graphs: boolean, device: 'cuda' | 'cpu' = 'cuda') => {
    process.env.REPRO_CUDA_GRAPHS = graphs ? '1' : '0';
    const { config } = loadExperiment('charlm-quick', ['training.steps=40', 'training.valid_interval=0', 'training.log_interval=10', 'training.eval_batches=2', 'precision.rounding=nearest'], { device });
    const dir = mkdtempSync(join(tmpdir(), 'repro-cuda-train-'));
    return runExperiment({ config, resultsFile: join(dir, 'r.csv'), runsDir: join(dir, 'runs'), progress: 'silent' });
  };

  it('a step replayed as a CUDA graph trains exactly like eager steps, run after run, and close to the CPU', async () => {
    const eager = await run(false);
    const graph = await run(true);
    const again = await run(true);
    const cpu = await run(false, 'cpu');
    expect(graph.status).toBe('ok');
    expect(graph.device).toBe('cuda');
    // Same kernels in the same order, none adding in a varying order (no float atomics): the
    // same numbers to the last bit.
    expect(graph.bpc).toEqual(eager.bpc);
    expect(again.bpc).toEqual(graph.bpc);
    // Different GEMM and reduction orders: close, not equal, after 40 steps.
    expect(Math.abs(graph.bpc.valid - cpu.bpc.valid)).toBeLessThan(0.02);
    delete process.env.REPRO_CUDA_GRAPHS;
  });
});
