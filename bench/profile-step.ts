// `tsx bench/profile-step.ts --device cuda --only "large reference regular fp32"`: where a training
// step's time goes, per backend kernel kind. Each kernel call is bracketed by device
// synchronisations (so the total exceeds a graph replay's time; the shares are what matter).
import { parseArgs } from 'node:util';
import * as T from '../src/tensor/index.ts';
import type { Backend } from '../src/backend/backend.ts';
import { createBackend, type DeviceChoice } from '../src/backend/select.ts';
import { benchCharLmCases, trainingStep } from './charlm-cases.ts';
import { referenceCases } from './reference-cases.ts';

const { values } = parseArgs({ options: { device: { type: 'string', default: 'auto' }, only: { type: 'string', default: 'paper reference regular fp32' }, steps: { type: 'string', default: '5' } } });
const backend = await createBackend(values.device as DeviceChoice);
T.setDefaultBackend(backend);
const all = [...referenceCases(true), ...(await benchCharLmCases(true))];
const c = all.find((x) => x.key === values.only);
if (!c) throw new Error(`no case ${values.only}; cases: ${all.map((x) => x.key).join(', ')}`);
const built = c.build();
const { step } = trainingStep(built);
step();
const totals = new Map<string, { ms: number; calls: number }>();
const target = backend as unknown as Record<string, (...args: unknown[]) => unknown>;
for (const name of ['fill', 'unary', 'unaryGrad', 'binary', 'where', 'copy', 'reduce', 'gemm', 'softmax', 'softmaxGrad', 'layerNorm', 'layerNormGrad', 'gather', 'scatterAdd', 'crossEntropy', 'crossEntropyGrad', 'random', 'quantise', 'increment', 'adamw']) {
  const original = target[name].bind(backend);
  target[name] = (...args: unknown[]) => {
    backend.synchronize();
    const start = performance.now();
    const result = original(...args);
    backend.synchronize();
    const detail = typeof args[0] === 'string' ? `${name}:${args[0]}` : name === 'gemm' ? `gemm:${JSON.stringify((args[0] as { m: number; n: number; k: number; batch: number; inputFormat?: string }), ['m', 'n', 'k', 'batch', 'inputFormat'])}` : name;
    const entry = totals.get(detail) ?? { ms: 0, calls: 0 };
    entry.ms += performance.now() - start;
    entry.calls++;
    totals.set(detail, entry);
    return result;
  };
}
const steps = Number(values.steps);
const started = performance.now();
for (let i = 0; i < steps; i++) step();
const wall = (performance.now() - started) / steps;
const rows = [...totals.entries()].sort((a, b) => b[1].ms - a[1].ms);
const total = rows.reduce((s, [, v]) => s + v.ms, 0) / steps;
console.log(`${c.key}: ${wall.toFixed(2)} ms/step with a sync around every kernel; kernels ${total.toFixed(2)} ms`);
for (const [name, v] of rows.slice(0, 40)) console.log(`${(v.ms / steps).toFixed(3).padStart(9)} ms  ${String(v.calls / steps).padStart(5)} calls  ${name}`);
void (backend satisfies Backend);
