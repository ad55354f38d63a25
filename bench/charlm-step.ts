// `npm run bench:charlm [-- --device cuda --steps 100 --only "paper;rnn"]` (--only: substrings of case names, `;`-separated): milliseconds per full training
// step (zero grads + forward + loss + backward + AdamW), tokens/s and peak memory, next to PyTorch's
// figures from ../shared/bench/pytorch-reference.md (measured on the same H200). On CUDA the step
// is captured once as a CUDA graph after two warm-up steps and replayed (--no-graphs: eager).
import { parseArgs } from 'node:util';
import * as T from '../src/tensor/index.ts';
import type { Backend } from '../src/backend/backend.ts';
import { createBackend, type DeviceChoice } from '../src/backend/select.ts';
import { benchCharLmCases, trainingStep, type StepCase } from './charlm-cases.ts';
import { VOCAB, referenceCases } from './reference-cases.ts';

/** PyTorch 2.11 on the H200 (pytorch-reference.md): eager and torch.compile (CUDA graphs) ms/step. */
const PYTORCH: Record<string, { eager?: number; compiled?: number }> = {
  'paper reference regular fp32': { eager: 8.0, compiled: 2.66 },
  'paper reference unit fp32': { eager: 28.95, compiled: 2.82 },
  'paper reference regular bf16': { eager: 11.79 },
  'paper reference unit bf16': { eager: 30.92 },
  'large reference regular fp32': { eager: 35.34, compiled: 11.15 /* TF32 */ },
  'large reference unit fp32': { eager: 41.55 },
  'large reference regular bf16': { eager: 13.37, compiled: 4.99 },
  'large reference unit bf16': { eager: 32.28 },
};


interface Measured {
  msPerStep: number;
  tokensPerSecond: number;
  peakMiB: number;
}

interface GraphCapable extends Backend {
  captureGraph(fn: () => void): { replay(): void; dispose(): void };
}

function canCapture(backend: Backend): backend is GraphCapable {
  return typeof (backend as Partial<GraphCapable>).captureGraph === 'function';
}

function measure(backend: Backend, c: StepCase, steps: number, graphs: boolean): Measured {
  backend.resetPeakMemory();
  const built = c.build();
  const { step, dispose } = trainingStep(built);
  step();
  step();
  backend.synchronize();
  let replay = step;
  let graph: { replay(): void; dispose(): void } | null = null;
  if (graphs && canCapture(backend)) {
    graph = backend.captureGraph(step);
    replay = () => graph!.replay();
    replay();
    backend.synchronize();
  }
  const start = performance.now();
  for (let i = 0; i < steps; i++) replay();
  backend.synchronize();
  const ms = (performance.now() - start) / steps;
  const peak = backend.memoryStats().peakBytes / 2 ** 20;
  graph?.dispose();
  dispose();
  built.dispose();
  return { msPerStep: ms, tokensPerSecond: (c.tokens / ms) * 1000, peakMiB: peak };
}

const { values } = parseArgs({
  options: {
    device: { type: 'string', default: 'auto' },
    steps: { type: 'string', default: '50' },
    only: { type: 'string' },
    'no-graphs': { type: 'boolean', default: false },
    native: { type: 'boolean', default: true },
  },
});
const backend = await createBackend(values.device as DeviceChoice);
T.setDefaultBackend(backend);
T.setRandomContext(new T.RandomContext(1));
const steps = Number(values.steps);
const graphs = !values['no-graphs'] && backend.name === 'cuda';
const cases = [...referenceCases(values.native ?? true), ...(await benchCharLmCases(values.native ?? true))].filter((c) => !values.only || values.only.split(';').some((part) => c.key.includes(part)));
console.log(`device ${backend.name}${graphs ? ', whole step captured as a CUDA graph' : ''}; ${steps} timed steps after warm-up; vocab ${VOCAB}`);
const header = ['config', 'ms/step', 'tokens/s', 'peak MiB', 'PyTorch eager', 'PyTorch compiled', 'speed-up vs best'];
const rows: string[][] = [];
for (const c of cases) {
  let cells: string[];
  try {
    const m = measure(backend, c, steps, graphs);
    const ref = PYTORCH[c.key];
    const best = Math.min(ref?.eager ?? Infinity, ref?.compiled ?? Infinity);
    cells = [
      c.key,
      m.msPerStep.toFixed(2),
      `${(m.tokensPerSecond / 1000).toFixed(0)}k`,
      m.peakMiB.toFixed(0),
      ref?.eager?.toFixed(2) ?? '-',
      ref?.compiled?.toFixed(2) ?? '-',
      Number.isFinite(best) ? `${(best / m.msPerStep).toFixed(2)}x` : '-',
    ];
  } catch (err) {
    cells = [c.key, `failed: ${(err as Error).message.split('\n')[0].slice(0, 80)}`, '', '', '', '', ''];
  }
  rows.push(cells);
  console.log(cells.join(' | '));
}
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
console.log(`\n| ${header.map((h, i) => h.padEnd(widths[i])).join(' | ')} |`);
console.log(`| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`);
for (const r of rows) console.log(`| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`);
