// `tsx bench/gemm-shapes.ts --only "paper reference regular fp32"`: every distinct GEMM of one
// training step, timed on the backend's current path and on each of cuBLASLt's top heuristic
// algorithms (FP32 compute; BF16 inputs for --format bf16), to see which kernel choice is worth it.
import { parseArgs } from 'node:util';
import koffi from 'koffi';
import * as T from '../src/tensor/index.ts';
import type { GemmParams } from '../src/backend/backend.ts';
import { createBackend } from '../src/backend/select.ts';
import type { CudaBackend } from '../src/backend/cuda/backend.ts';
import { asCuda } from '../src/backend/cuda/runtime.ts';
import {
  CUBLASLT_MATMUL_DESC_TRANSA, CUBLASLT_MATMUL_DESC_TRANSB, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
  CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, CUBLAS_COMPUTE_32F, CUBLAS_OP_N, CUBLAS_OP_T, CUDA_R_16BF, CUDA_R_32F, HEURISTIC_RESULT_BYTES, type CublasLtApi,
} from '../src/backend/cuda/cublas-api.ts';
import { eventTimer } from './cuda-events.ts';
import { benchCharLmCases, trainingStep } from './charlm-cases.ts';
import { referenceCases } from './reference-cases.ts';

const { values } = parseArgs({ options: { only: { type: 'string', default: 'paper reference regular fp32' }, algos: { type: 'string', default: '8' }, reps: { type: 'string', default: '20' } } });
const backend = (await createBackend('cuda')) as unknown as CudaBackend;
T.setDefaultBackend(backend);
T.setRandomContext(new T.RandomContext(1));
const timer = eventTimer(backend);
const engine = backend.gemmEngine as unknown as { lt: { api: CublasLtApi; handle: bigint }; workspace: { address: number; bytes: number } };
const { api, handle } = engine.lt;
const reps = Number(values.reps);

function time(fn: () => void): number {
  fn();
  for (let i = 0; i < reps; i++) timer.around(fn);
  const t = timer.collect().sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)]!;
}

function ltCandidates(p: GemmParams, type: number): { run: () => void; label: string }[] {
  const out = new BigUint64Array(1);
  const check = (what: string, code: number) => {
    if (code !== 0) throw new Error(`${what} ${code}`);
  };
  check('desc', api.cublasLtMatmulDescCreate(out, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const desc = out[0]!;
  api.cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, new Int32Array([p.transB ? CUBLAS_OP_T : CUBLAS_OP_N]), 4);
  api.cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, new Int32Array([p.transA ? CUBLAS_OP_T : CUBLAS_OP_N]), 4);
  const layout = (t: number, rows: number, cols: number, ld: number, stride: number) => {
    check('layout', api.cublasLtMatrixLayoutCreate(out, t, rows, cols, ld));
    const h = out[0]!;
    if (p.batch > 1) {
      api.cublasLtMatrixLayoutSetAttribute(h, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, new Int32Array([p.batch]), 4);
      api.cublasLtMatrixLayoutSetAttribute(h, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, new BigInt64Array([BigInt(stride)]), 8);
    }
    return h;
  };
  // Column-major view: C^T (n×m) = op(B)^T (n×k) · op(A)^T (k×m).
  const aL = p.transB ? layout(type, p.k, p.n, p.ldb, p.strideB) : layout(type, p.n, p.k, p.ldb, p.strideB);
  const bL = p.transA ? layout(type, p.m, p.k, p.lda, p.strideA) : layout(type, p.k, p.m, p.lda, p.strideA);
  const cL = layout(CUDA_R_32F, p.n, p.m, p.ldc, p.strideC);
  api.cublasLtMatmulPreferenceCreate(out);
  const pref = out[0]!;
  api.cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, new BigUint64Array([BigInt(engine.workspace.bytes)]), 8);
  const requested = Number(values.algos);
  const results = koffi.alloc('uint8_t', HEURISTIC_RESULT_BYTES * requested) as bigint;
  const returned = new Int32Array(1);
  const code = api.cublasLtMatmulAlgoGetHeuristic(handle, desc, aL, bL, cL, cL, pref, requested, results, returned);
  if (code !== 0) return [];
  const bytes = type === CUDA_R_32F ? 4 : 2;
  const rt = backend.runtime;
  const aBlock = type === CUDA_R_32F ? null : rt.allocateScratch(p.a.size * bytes);
  const bBlock = type === CUDA_R_32F ? null : rt.allocateScratch(p.b.size * bytes);
  const aAddr = (aBlock?.address ?? asCuda(p.a, 'a').address) + bytes * p.aOffset;
  const bAddr = (bBlock?.address ?? asCuda(p.b, 'b').address) + bytes * p.bOffset;
  const c = asCuda(p.c, 'c').address + 4 * p.cOffset;
  const alpha = new Float32Array([p.alpha]);
  const beta = new Float32Array([p.beta]);
  const base = BigInt(koffi.address(results));
  return Array.from({ length: returned[0]! }, (_, i) => {
    const algo = base + BigInt(i * HEURISTIC_RESULT_BYTES);
    return {
      label: `lt#${i}`,
      run: () => {
        const r = api.cublasLtMatmul(handle, desc, alpha, bAddr, aL, aAddr, bL, beta, c, cL, c, cL, algo, engine.workspace.address, engine.workspace.bytes, rt.stream);
        if (r !== 0) throw new Error(`cublasLtMatmul ${r}`);
      },
    };
  });
}

const all = [...referenceCases(true), ...(await benchCharLmCases(true))];
for (const key of values.only!.split(';')) {
  const c = all.find((x) => x.key === key);
  if (!c) throw new Error(`no case ${key}`);
  const built = c.build();
  const { step, dispose } = trainingStep(built);
  step();
  // Timed inline, on the first call of each distinct GEMM, while its operands are alive.
  const rows: string[] = [];
  const seen = new Map<string, { current: number; best: number; calls: number }>();
  const original = backend.gemm.bind(backend);
  backend.gemm = (p: GemmParams) => {
    const label = `${p.m}x${p.n}x${p.k} b${p.batch}${p.transA ? ' tA' : ''}${p.transB ? ' tB' : ''} beta${p.beta}${p.inputFormat ? ` ${p.inputFormat}` : ''}`;
    const entry = seen.get(label);
    if (entry) {
      entry.calls++;
      original(p);
      return;
    }
    const current = time(() => original(p)) * 1000;
    const type = p.inputFormat === 'bf16' ? CUDA_R_16BF : CUDA_R_32F;
    let best = Infinity;
    let bestLabel = '-';
    for (const cand of ltCandidates(p, type)) {
      try {
        const t = time(cand.run) * 1000;
        if (t < best) {
          best = t;
          bestLabel = cand.label;
        }
      } catch (err) {
        bestLabel = (err as Error).message;
      }
    }
    seen.set(label, { current, best: Math.min(best, current), calls: 1 });
    rows.push(`${label}|${current.toFixed(1)}|${best.toFixed(1)}|${bestLabel}`);
    original(p);
  };
  step();
  backend.synchronize();
  backend.gemm = original;
  console.log(`\n## ${key}: ${seen.size} distinct GEMMs`);
  console.log('| gemm | calls | current us | best Lt us | Lt algo | current ms/step | best ms/step |');
  console.log('|---|---|---|---|---|---|---|');
  let currentTotal = 0;
  let bestTotal = 0;
  for (const row of rows) {
    const [label, current, best, algo] = row.split('|');
    const e = seen.get(label!)!;
    currentTotal += (e.current * e.calls) / 1000;
    bestTotal += (e.best * e.calls) / 1000;
    console.log(`| ${label} | ${e.calls} | ${current} | ${best} | ${algo} | ${((e.current * e.calls) / 1000).toFixed(3)} | ${((e.best * e.calls) / 1000).toFixed(3)} |`);
  }
  console.log(`GEMM total per step: current ${currentTotal.toFixed(3)} ms, with the best of current/Lt ${bestTotal.toFixed(3)} ms`);
  dispose();
  built.dispose();
}
