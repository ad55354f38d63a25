// `npm run bench:cpu`: CPU backend throughput, ours next to PyTorch CPU measured in the same run
// (the machine is shared, so only ratios taken side by side mean anything).
//
// Each section is a function registered with registerBenchSection; add a section (e.g. the 4-layer
// MLP forward+backward, whose PyTorch side is `torch.request({ command: 'mlp', ... })`) by writing
// one more function below and registering it next to the matmul one.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import * as T from '../src/tensor/index.ts';
import { findCblas } from '../src/backend/cpu/blas.ts';
import {
  BLAS_MIN_MULTIPLY_ADDS, gemmImplementation, setGemmImplementation, sgemm, type GemmArgs,
} from '../src/backend/cpu/gemm.ts';

/** A section gets the PyTorch helper (null when PyTorch is not importable) and prints its table. */
type BenchSection = (torch: TorchHelper | null) => Promise<void>;

const sections: { name: string; run: BenchSection }[] = [];

/** Adds a section; sections run in registration order. */
function registerBenchSection(name: string, run: BenchSection): void {
  sections.push({ name, run });
}

// Debian's python3-torch installs for the system interpreter only, not for a pyenv python3 on PATH.
const TORCH_PYTHON = '/usr/bin/python3';
const TORCH_HELPER = fileURLToPath(new URL('./torch_cpu.py', import.meta.url));
/** Rounds of alternating (ours, PyTorch) measurements; each side keeps its best, damping noise from other users. */
const ROUNDS = 3;

/**
 * One long-lived `torch_cpu.py serve` process, so each measurement of ours can be followed by the
 * PyTorch one within a second instead of paying the torch import per request.
 */
class TorchHelper {
  private readonly pending: ((line: string | null) => void)[] = [];

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => this.pending.shift()?.(line));
    // A missing interpreter or a crash answers every outstanding request with null.
    const failAll = () => {
      for (const resolve of this.pending.splice(0)) resolve(null);
    };
    child.on('close', failAll);
    child.on('error', failAll);
    child.stdin.on('error', failAll);
    child.stderr.resume();
  }

  /** Starts the helper; null when the interpreter or `import torch` fails. */
  static async start(): Promise<TorchHelper | null> {
    const helper = new TorchHelper(spawn(TORCH_PYTHON, [TORCH_HELPER, 'serve'], { stdio: 'pipe' }));
    const info = await helper.request({ command: 'info' });
    if (isTorchInfo(info)) return helper;
    helper.close();
    return null;
  }

  request(message: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve) => {
      this.pending.push((line) => resolve(line === null ? null : JSON.parse(line) as unknown));
      if (this.child.stdin.writable) this.child.stdin.write(`${JSON.stringify(message)}\n`);
    });
  }

  close(): void {
    this.child.stdin.end();
  }
}

interface TorchInfo {
  torch: string;
  threads: number;
  openblas_threads: number | null;
}

interface TorchMatmul extends TorchInfo {
  results: { size: number; gflops: number }[];
}

function isTorchInfo(value: unknown): value is TorchInfo {
  return typeof value === 'object' && value !== null && typeof (value as TorchInfo).torch === 'string';
}

function isTorchMatmul(value: unknown): value is TorchMatmul {
  return typeof value === 'object' && value !== null && Array.isArray((value as TorchMatmul).results);
}

/** Best of at least `minRepeats` runs (after one warm-up), continuing while under the budget. */
function bestMilliseconds(step: () => void, minRepeats: number, budgetMs: number): number {
  step();
  let best = Number.POSITIVE_INFINITY;
  const started = performance.now();
  for (let repeats = 0; repeats < minRepeats || performance.now() - started < budgetMs; repeats++) {
    const t0 = performance.now();
    step();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

function randomMatrix(n: number): Float32Array {
  const matrix = new Float32Array(n * n);
  for (let i = 0; i < matrix.length; i++) matrix[i] = Math.random() * 2 - 1;
  return matrix;
}

function squareGemm(n: number): GemmArgs {
  return {
    transA: false, transB: false, m: n, n, k: n, alpha: 1, beta: 0,
    a: randomMatrix(n), aOffset: 0, lda: n, b: randomMatrix(n), bOffset: 0, ldb: n,
    c: new Float32Array(n * n), cOffset: 0, ldc: n,
  };
}

function ourGflops(implementation: 'blas' | 'typescript', n: number): number {
  setGemmImplementation(implementation);
  const args = squareGemm(n);
  // The TS kernel needs ~0.4 s at 1024^3; three runs are enough for a best-of.
  const ms = implementation === 'typescript'
    ? bestMilliseconds(() => sgemm(args), 3, 0)
    : bestMilliseconds(() => sgemm(args), 5, 300);
  return (2 * n ** 3) / (ms * 1e6);
}

/** Nanoseconds per 1x1x1 cblas_sgemm through koffi, without and with offset subarray views. */
function koffiCallOverheadNs(): { plain: number; withOffsets: number } {
  setGemmImplementation('blas');
  const a = new Float32Array(4), b = new Float32Array(4), c = new Float32Array(4);
  const plain: GemmArgs = {
    transA: false, transB: false, m: 1, n: 1, k: 1, alpha: 1, beta: 0,
    a, aOffset: 0, lda: 1, b, bOffset: 0, ldb: 1, c, cOffset: 0, ldc: 1,
  };
  const withOffsets: GemmArgs = { ...plain, aOffset: 1, bOffset: 2, cOffset: 3 };
  const calls = 20000;
  const perCall = (args: GemmArgs) => bestMilliseconds(() => {
    for (let i = 0; i < calls; i++) sgemm(args);
  }, 5, 0) * 1e6 / calls;
  return { plain: perCall(plain), withOffsets: perCall(withOffsets) };
}

/** OpenBLAS's own thread count (it ignores Node's single JS thread and uses its pthread pool). */
function openblasThreads(path: string): number | null {
  try {
    const getThreads = koffi.load(path).func('int openblas_get_num_threads(void)') as unknown as () => number;
    return getThreads();
  } catch {
    return null;
  }
}

function formatRatio(ours: number | undefined, theirs: number | undefined): string {
  return ours !== undefined && theirs !== undefined ? `${(ours / theirs).toFixed(2)}x` : '-';
}

function formatRate(rate: number | undefined): string {
  return rate !== undefined ? rate.toFixed(1) : '-';
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells: string[]) => cells.map((cell, column) => cell.padStart(widths[column])).join('  ');
  console.log(line(header));
  console.log(widths.map((width) => '-'.repeat(width)).join('  '));
  for (const row of rows) console.log(line(row));
}

async function matmulSection(torch: TorchHelper | null): Promise<void> {
  const sizes = [256, 512, 1024];
  const blas = findCblas();
  const best = { blas: new Map<number, number>(), ts: new Map<number, number>(), torch: new Map<number, number>() };
  const keepBest = (map: Map<number, number>, size: number, rate: number) =>
    map.set(size, Math.max(map.get(size) ?? 0, rate));
  let torchInfo: TorchInfo | null = null;

  for (let round = 0; round < ROUNDS; round++) {
    for (const size of sizes) {
      keepBest(best.ts, size, ourGflops('typescript', size));
      if (blas) keepBest(best.blas, size, ourGflops('blas', size));
      const reply = torch ? await torch.request({ command: 'matmul', sizes: [size], budget_seconds: 0.3 }) : null;
      if (isTorchMatmul(reply)) {
        torchInfo = reply;
        for (const { gflops } of reply.results) keepBest(best.torch, size, gflops);
      }
    }
  }
  setGemmImplementation('auto');

  if (blas) {
    const threads = blas.vendor === 'openblas' ? openblasThreads(blas.path) : null;
    console.log(`BLAS: ${blas.path} (${blas.vendor}${threads !== null ? `, ${threads} threads` : ''})`);
    const overhead = koffiCallOverheadNs();
    setGemmImplementation('auto');
    console.log(`koffi call overhead: ${overhead.plain.toFixed(0)} ns per cblas_sgemm call, ` +
      `${overhead.withOffsets.toFixed(0)} ns with offset views`);
    console.log(`products under m*n*k = ${BLAS_MIN_MULTIPLY_ADDS} use the TypeScript kernel`);
  } else {
    console.log('BLAS: none found; TypeScript kernel only');
  }
  console.log(`auto mode: ${gemmImplementation()}`);
  if (torchInfo) {
    const blasThreads = torchInfo.openblas_threads !== null ? `, OpenBLAS ${torchInfo.openblas_threads} threads` : '';
    console.log(`PyTorch: ${torchInfo.torch} (${torchInfo.threads} intra-op threads${blasThreads})`);
  } else {
    console.log('PyTorch: not available');
  }
  console.log(`matmul, float32, GFLOP/s (best of ${ROUNDS} rounds):`);

  const header = ['n^3', 'BLAS', 'TypeScript'];
  if (torchInfo) header.push('PyTorch', 'BLAS/PyTorch', 'TS/PyTorch');
  const rows = sizes.map((size) => {
    const row = [`${size}`, formatRate(best.blas.get(size)), formatRate(best.ts.get(size))];
    if (torchInfo) {
      const torch = best.torch.get(size);
      row.push(formatRate(torch), formatRatio(best.blas.get(size), torch), formatRatio(best.ts.get(size), torch));
    }
    return row;
  });
  printTable(header, rows);
}

registerBenchSection('matmul', matmulSection);

/** Forward+backward of the same MLP as torch_cpu.py's: Linear layers (weight + bias) with ReLU
 * between, MSE loss, on our engine's CPU backend; best time over a short budget. */
function ourMlpMs(width: number, batch: number, layers: number): number {
  const params = T.persistent(() =>
    Array.from({ length: layers }, (_, i) => {
      const bound = 1 / Math.sqrt(width);
      const w = T.randomUniform([width, width], 0, 2 * i, -bound, bound);
      const b = T.randomUniform([width], 0, 2 * i + 1, -bound, bound);
      w.requiresGrad = true;
      b.requiresGrad = true;
      return { w, b };
    }),
  );
  const inputs = T.persistent(() => T.randomNormal([batch, width], 1, 0));
  const targets = T.persistent(() => T.randomNormal([batch, width], 2, 0));
  const step = () =>
    T.tidy(() => {
      let h = inputs;
      params.forEach(({ w, b }, i) => {
        h = T.add(T.matmul(h, w, { transB: true }), b);
        if (i < layers - 1) h = T.relu(h);
      });
      const diff = T.sub(h, targets);
      T.backward(T.mean(T.mul(diff, diff)));
    });
  step();
  let best = Infinity;
  const deadline = performance.now() + 3000;
  for (let i = 0; i < 20 && (i < 3 || performance.now() < deadline); i++) {
    const start = performance.now();
    step();
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

function isTorchMlp(reply: unknown): reply is { ms: number } {
  return typeof reply === 'object' && reply !== null && typeof (reply as { ms?: unknown }).ms === 'number';
}

async function mlpSection(torch: TorchHelper | null): Promise<void> {
  const [width, batch, layers] = [512, 2048, 4];
  let ours = Infinity;
  let theirs = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    ours = Math.min(ours, ourMlpMs(width, batch, layers));
    const reply = torch ? await torch.request({ command: 'mlp', width, batch, layers, budget_seconds: 2 }) : null;
    if (isTorchMlp(reply)) theirs = Math.min(theirs, reply.ms);
  }
  console.log(`${layers}-layer MLP (width ${width}, batch ${batch}), forward+backward ms (best of ${ROUNDS} rounds), matmul: ${gemmImplementation()}`);
  const header = ['ours ms'];
  const row = [ours.toFixed(1)];
  if (Number.isFinite(theirs)) {
    header.push('PyTorch ms', 'PyTorch/ours speed');
    row.push(theirs.toFixed(1), `${(theirs / ours).toFixed(2)}x`);
  }
  printTable(header, [row]);
}

registerBenchSection('mlp', mlpSection);

const torch = await TorchHelper.start();
try {
  for (const { name, run } of sections) {
    console.log(`\n== ${name} ==`);
    await run(torch);
  }
} finally {
  torch?.close();
}
