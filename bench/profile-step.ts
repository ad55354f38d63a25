// `tsx bench/profile-step.ts --device cuda --only "large reference regular fp32"`: where a training
// step's time goes, per backend kernel kind. On CUDA every kernel call is bracketed by CUDA events
// on the stream (no host synchronisation), so the times are the GPU's own; the sum is compared with
// a CUDA-graph replay of the same step, whose excess over the sum is launch gaps. On the CPU each
// call is timed on the host.
import { parseArgs } from 'node:util';
import * as T from '../src/tensor/index.ts';
import type { Backend } from '../src/backend/backend.ts';
import { createBackend, type DeviceChoice } from '../src/backend/select.ts';
import type { CudaBackend } from '../src/backend/cuda/backend.ts';
import { eventTimer, type Timer } from './cuda-events.ts';
import { benchCharLmCases, trainingStep } from './charlm-cases.ts';
import { referenceCases } from './reference-cases.ts';

const { values } = parseArgs({
  options: {
    device: { type: 'string', default: 'auto' },
    only: { type: 'string', default: 'paper reference regular fp32' },
    steps: { type: 'string', default: '5' },
    top: { type: 'string', default: '40' },
  },
});
const backend = await createBackend(values.device as DeviceChoice);
T.setDefaultBackend(backend);
T.setRandomContext(new T.RandomContext(1));
const all = [...referenceCases(true), ...(await benchCharLmCases(true))];
const keys = values.only!.split(';');
const KERNELS = ['fill', 'unary', 'unaryGrad', 'binary', 'where', 'copy', 'reduce', 'gemm', 'gemms', 'gemmStrided', 'gemmsStrided', 'lambUpdate', 'lambApply', 'highwaySequence', 'highwaySequenceGrad', 'highwayStep', 'highwayStepGrad', 'softmax', 'softmaxGrad', 'layerNorm', 'layerNormGrad', 'gather', 'scatterAdd', 'crossEntropy', 'crossEntropyGrad', 'random', 'quantise', 'increment', 'adamw', 'adamwMulti', 'sgdm', 'attention', 'attentionGrad'];

function hostTimer(): Timer {
  let times: number[] = [];
  return {
    around(fn) {
      backend.synchronize();
      const start = performance.now();
      const r = fn();
      backend.synchronize();
      times.push(performance.now() - start);
      return r;
    },
    collect() {
      const t = times;
      times = [];
      return t;
    },
  };
}

type ProductShape = { m: number; n: number; k: number; batch?: number | readonly number[]; inputFormat?: string; transA?: boolean; transB?: boolean };

/** A kernel call's row label: its kind, and for products their shapes and formats. */
function callLabel(name: string, first: unknown): string {
  if (typeof first === 'string') return `${name}:${first}`;
  const shape = (p: ProductShape) => `${p.m}x${p.n}x${p.k}${p.inputFormat ? ` ${p.inputFormat}` : ''}`;
  if (name === 'gemm') {
    const p = first as ProductShape;
    return `gemm ${p.m}x${p.n}x${p.k}${(p.batch as number) > 1 ? ` b${p.batch}` : ''}${p.transA ? ' tA' : ''}${p.transB ? ' tB' : ''}${p.inputFormat ? ` ${p.inputFormat}` : ''}`;
  }
  if (name === 'gemmStrided' || name === 'gemmsStrided') return `${name} ${([first].flat() as ProductShape[]).map(shape).join(' + ')}`;
  return name;
}

const timer = backend.name === 'cuda' ? eventTimer(backend as unknown as CudaBackend) : hostTimer();
const steps = Number(values.steps);

for (const key of keys) {
  const c = all.find((x) => x.key === key);
  if (!c) throw new Error(`no case ${key}; cases: ${all.map((x) => x.key).join(', ')}`);
  const built = c.build();
  const { step, dispose } = trainingStep(built);
  step();
  step();
  backend.synchronize();
  // Graph replay time first (CUDA), with the original kernels.
  let replayMs = NaN;
  if (backend.name === 'cuda' && process.env.REPRO_CUDA_GRAPHS !== '0') {
    const graph = (backend as unknown as CudaBackend).captureGraph(step);
    graph.replay();
    backend.synchronize();
    const start = performance.now();
    for (let i = 0; i < 20; i++) graph.replay();
    backend.synchronize();
    replayMs = (performance.now() - start) / 20;
    graph.dispose();
  }
  const target = backend as unknown as Record<string, (...args: unknown[]) => unknown>;
  const originals = new Map<string, (...args: unknown[]) => unknown>();
  const labels: string[] = [];
  for (const name of KERNELS) {
    if (typeof target[name] !== 'function') continue;
    const original = target[name];
    originals.set(name, original);
    target[name] = (...args: unknown[]) => {
      labels.push(callLabel(name, args[0]));
      return timer.around(() => original.apply(backend, args));
    };
  }
  const totals = new Map<string, { ms: number; calls: number }>();
  const started = performance.now();
  for (let i = 0; i < steps; i++) {
    step();
    const times = timer.collect();
    times.forEach((ms, j) => {
      const entry = totals.get(labels[j]!) ?? { ms: 0, calls: 0 };
      entry.ms += ms;
      entry.calls++;
      totals.set(labels[j]!, entry);
    });
    labels.length = 0;
  }
  const wall = (performance.now() - started) / steps;
  for (const [name, original] of originals) target[name] = original;
  const rows = [...totals.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const total = rows.reduce((s, [, v]) => s + v.ms, 0) / steps;
  const calls = rows.reduce((s, [, v]) => s + v.calls, 0) / steps;
  console.log(`\n## ${c.key}: ${calls} kernel calls/step; kernel time ${total.toFixed(3)} ms/step; graph replay ${replayMs.toFixed(3)} ms; instrumented eager ${wall.toFixed(2)} ms`);
  const byKind = new Map<string, number>();
  for (const [name, v] of rows) {
    const kind = name.split(/[ :]/)[0]!;
    byKind.set(kind, (byKind.get(kind) ?? 0) + v.ms / steps);
  }
  console.log('by kind: ' + [...byKind.entries()].sort((a, b) => b[1] - a[1]).map(([k, ms]) => `${k} ${ms.toFixed(3)}`).join(', '));
  for (const [name, v] of rows.slice(0, Number(values.top))) console.log(`${(v.ms / steps).toFixed(4).padStart(9)} ms  ${String(v.calls / steps).padStart(5)} calls  ${((v.ms / v.calls) * 1000).toFixed(1).padStart(8)} us/call  ${name}`);
  dispose();
  built.dispose();
}
void (backend satisfies Backend);
