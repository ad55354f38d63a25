/**
 * Timings of the CUDA backend on the machine it runs on (not a test; `tsx test/cuda/measure.ts`):
 * host cost of a kernel launch, eager vs graph replay of a chain of small kernels, and GEMM
 * throughput of each input-format path.
 */
import type { GemmParams, Storage } from '../../src/backend/backend.ts';
import { tryCreateCudaBackend, type CudaBackend } from '../../src/backend/cuda/index.ts';

function seconds(fn: () => void): number {
  const start = performance.now();
  fn();
  return (performance.now() - start) / 1000;
}

function launchCost(backend: CudaBackend): void {
  const n = 1024;
  const x = backend.alloc(n, 'f32');
  const y = backend.alloc(n, 'f32');
  backend.fill(x, 0, n, 0.5);
  backend.unary('exp', x, y, n, 1, 1);
  backend.synchronize();
  const launches = 20000;
  const host = seconds(() => {
    for (let i = 0; i < launches; i++) backend.unary('exp', x, y, n, 1, 1);
  });
  const total = host + seconds(() => backend.synchronize());
  console.log(`launch: ${((host / launches) * 1e6).toFixed(2)} µs host time per unary launch, ${((total / launches) * 1e6).toFixed(2)} µs per kernel incl. device`);

  const chain = 200;
  const eager = seconds(() => {
    for (let r = 0; r < 10; r++) for (let i = 0; i < chain; i++) backend.unary(i % 2 ? 'exp' : 'tanh', i % 2 ? x : y, i % 2 ? y : x, n, 0.5, 1);
    backend.synchronize();
  });
  const graph = backend.captureGraph(() => {
    for (let i = 0; i < chain; i++) backend.unary(i % 2 ? 'exp' : 'tanh', i % 2 ? x : y, i % 2 ? y : x, n, 0.5, 1);
  });
  graph.replay();
  backend.synchronize();
  const replay = seconds(() => {
    for (let r = 0; r < 10; r++) graph.replay();
    backend.synchronize();
  });
  graph.dispose();
  console.log(`graph: ${chain} small kernels eager ${((eager / 10) * 1e3).toFixed(2)} ms, replayed ${((replay / 10) * 1e3).toFixed(2)} ms`);
  backend.release(x);
  backend.release(y);
}

function gemmThroughput(backend: CudaBackend, size: number, format: NonNullable<GemmParams['inputFormat']>): void {
  const n = size * size;
  const [a, b, c]: Storage[] = [backend.alloc(n, 'f32'), backend.alloc(n, 'f32'), backend.alloc(n, 'f32')];
  backend.random(a, n, 'normal', 1, 1, null, 0, 1);
  backend.random(b, n, 'normal', 1, 2, null, 0, 1);
  const run = (): void =>
    backend.gemm({
      transA: false, transB: true, m: size, n: size, k: size, alpha: 1, a, aOffset: 0, lda: size, b, bOffset: 0, ldb: size,
      beta: 0, c, cOffset: 0, ldc: size, batch: 1, strideA: 0, strideB: 0, strideC: 0, inputFormat: format,
    });
  run();
  backend.synchronize();
  const reps = 10;
  const t = seconds(() => {
    for (let i = 0; i < reps; i++) run();
    backend.synchronize();
  });
  console.log(`gemm ${size}³ ${format}: ${((2 * size ** 3 * reps) / t / 1e12).toFixed(1)} TFLOP/s (operand packing included)`);
  for (const s of [a, b, c]) backend.release(s);
}

const backend = tryCreateCudaBackend();
if (typeof backend === 'string') {
  console.log(`no CUDA: ${backend}`);
} else {
  launchCost(backend);
  for (const format of ['fp32', 'tf32', 'bf16', 'fp16', 'e4m3'] as const) gemmThroughput(backend, 8192, format);
  const native = tryCreateCudaBackend({ nativeFp8: true });
  if (typeof native !== 'string') {
    gemmThroughput(native, 8192, 'e4m3');
    console.log(`native FP8 fallbacks: ${[...native.gemmEngine.fallbacks].join('; ') || 'none'}; fp8 products: ${native.gemmEngine.counts.fp8}`);
  }
  console.log(`memory: ${JSON.stringify(backend.memoryStats())}`);
}
