// `tsx bench/count-kernels.ts --only "paper reference regular fp32"`: how many backend kernels one
// training step launches, by kind (runs on any backend; the count is what a CUDA graph replays).
import { parseArgs } from 'node:util';
import * as T from '../src/tensor/index.ts';
import { createBackend, type DeviceChoice } from '../src/backend/select.ts';
import { benchCharLmCases, trainingStep } from './charlm-cases.ts';
import { referenceCases } from './reference-cases.ts';

const { values } = parseArgs({ options: { device: { type: 'string', default: 'cpu' }, only: { type: 'string', default: 'paper reference regular fp32' } } });
const backend = await createBackend(values.device as DeviceChoice);
T.setDefaultBackend(backend);
T.setRandomContext(new T.RandomContext(1));
const all = [...referenceCases(true), ...(await benchCharLmCases(true))];
const c = all.find((x) => x.key === values.only);
if (!c) throw new Error(`no case ${values.only}; cases: ${all.map((x) => x.key).join(', ')}`);
const built = c.build();
const { step } = trainingStep(built);
step();
const counts = new Map<string, number>();
const target = backend as unknown as Record<string, (...args: unknown[]) => unknown>;
let insideGemms = false;
const skip = new Set(['alloc', 'release', 'write', 'read', 'memoryStats', 'resetPeakMemory', 'synchronize', 'constructor']);
for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(backend))) {
  if (skip.has(name) || typeof target[name] !== 'function') continue;
  const original = target[name].bind(backend);
  target[name] = (...args: unknown[]) => {
    // gemms(list) is list.length GEMM launches (the CPU twin calls gemm for each: not counted twice).
    if (name === 'gemms') {
      counts.set('gemm', (counts.get('gemm') ?? 0) + (args[0] as unknown[]).length);
      insideGemms = true;
      try {
        return original(...args);
      } finally {
        insideGemms = false;
      }
    }
    if (insideGemms) return original(...args);
    const detail = typeof args[0] === 'string' ? `${name}:${args[0]}` : name;
    counts.set(detail, (counts.get(detail) ?? 0) + 1);
    return original(...args);
  };
}
step();
const rows = [...counts.entries()].sort((a, b) => b[1] - a[1]);
console.log(`${c.key}: ${rows.reduce((s, [, n]) => s + n, 0)} kernel calls per step`);
for (const [name, n] of rows) console.log(`${String(n).padStart(6)}  ${name}`);
