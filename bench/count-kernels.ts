// `tsx bench/count-kernels.ts --only "paper reference regular fp32"`: how many backend kernels one
// training step launches, by kind (runs on any backend; the count is what a CUDA graph replays),
// and the step's arithmetic in products: 2·m·n·k per GEMM entry, counted dense (causal skipping
// ignored), leaving out products inside fused kernels such as the RHN's whole-sequence recurrence.
// That is a lower bound on what any implementation must multiply-add, whatever its kernels.
import { parseArgs } from 'node:util';
import * as T from '../src/tensor/index.ts';
import type { GemmParams, StridedGemmParams } from '../src/backend/backend.ts';
import { createBackend, type DeviceChoice } from '../src/backend/select.ts';
import { benchCharLmCases, trainingStep } from './charlm-cases.ts';
import { referenceCases } from './reference-cases.ts';

const { values } = parseArgs({
  options: { device: { type: 'string', default: 'cpu' }, only: { type: 'string', default: 'paper reference regular fp32' }, products: { type: 'boolean', default: false } },
});
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
let insideBatch = false;
let productFlops = 0;
let stridedProductFlops = 0;
const shapes = new Map<string, { count: number; flops: number }>();
function product(label: string, m: number, n: number, k: number, batch: number): number {
  const flops = 2 * m * n * k * batch;
  const key = `${label} m=${m} n=${n} k=${k} batch=${batch}`;
  const seen = shapes.get(key) ?? { count: 0, flops: 0 };
  shapes.set(key, { count: seen.count + 1, flops: seen.flops + flops });
  return flops;
}
const gemmFlops = (p: GemmParams) => product('gemm', p.m, p.n, p.k, p.batch);
const stridedFlops = (p: StridedGemmParams) => product('strided', p.m, p.n, p.k, p.batch[0] * p.batch[1]);
const skip = new Set(['alloc', 'release', 'write', 'read', 'memoryStats', 'resetPeakMemory', 'synchronize', 'constructor']);
for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(backend))) {
  if (skip.has(name) || typeof target[name] !== 'function') continue;
  const original = target[name].bind(backend);
  target[name] = (...args: unknown[]) => {
    if (name === 'gemm' && !insideBatch) productFlops += gemmFlops(args[0] as GemmParams);
    if (name === 'gemms') for (const p of args[0] as GemmParams[]) productFlops += gemmFlops(p);
    if (name === 'gemmStrided') stridedProductFlops += stridedFlops(args[0] as StridedGemmParams);
    if (name === 'gemmsStrided') for (const p of args[0] as StridedGemmParams[]) stridedProductFlops += stridedFlops(p);
    // gemms(list) is list.length GEMM launches and quantiseMany one launch; their CPU twins call
    // gemm or quantise for each entry, which are not counted again.
    if (name === 'gemms' || name === 'quantiseMany') {
      const label = name === 'gemms' ? 'gemm' : name;
      counts.set(label, (counts.get(label) ?? 0) + (name === 'gemms' ? (args[0] as unknown[]).length : 1));
      insideBatch = true;
      try {
        return original(...args);
      } finally {
        insideBatch = false;
      }
    }
    if (insideBatch) return original(...args);
    const detail = typeof args[0] === 'string' ? `${name}:${args[0]}` : name;
    counts.set(detail, (counts.get(detail) ?? 0) + 1);
    return original(...args);
  };
}
step();
const rows = [...counts.entries()].sort((a, b) => b[1] - a[1]);
console.log(`${c.key}: ${rows.reduce((s, [, n]) => s + n, 0)} kernel calls per step, ${((productFlops + stridedProductFlops) / 1e9).toFixed(2)} GFLOP in products (${(stridedProductFlops / 1e9).toFixed(2)} of them in attention's strided products)`);
for (const [name, n] of rows) console.log(`${String(n).padStart(6)}  ${name}`);
if (values.products) {
  console.log('products by shape (count, GFLOP):');
  for (const [key, { count, flops }] of [...shapes.entries()].sort((a, b) => b[1].flops - a[1].flops)) {
    console.log(`${String(count).padStart(6)}  ${(flops / 1e9).toFixed(3).padStart(8)}  ${key}`);
  }
}
