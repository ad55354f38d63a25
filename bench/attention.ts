// `tsx bench/attention.ts [--reps 50]` (CUDA): causal self-attention forward + backward at the
// reference model's two sizes, in each REPRO_ATTENTION implementation: materialised (products
// straight on the windows of the packed projection, probabilities stored, causal halves skipped),
// fused (T.attention) and copies (strided copies, q·kᵀ GEMM, softmax, GEMM with v, and their
// backward), each captured as a CUDA graph and replayed; GPU milliseconds per replay (median),
// measured alternately in one process. The backward starts from a fixed gradient at the output.
// REPRO_ATTENTION_ROWS_PER_THREAD=2|4 picks the fused kernels' thread layout. The last two
// columns but one are the 16-bit tensor-core kernels (nn's internalFormat: P and dS rounded to BF16 or
// FP16, as FlashAttention under autocast), on the same float32 inputs; the last runs them on
// 16-bit storage as the reference model does (q, k, v, the output and its gradient in BF16; the
// gradients of q, k and v stay float32 here, since qkv is a leaf).
import { parseArgs } from 'node:util';
import * as T from '../src/tensor/index.ts';
import * as nn from '../src/nn/index.ts';
import { tryCreateCudaBackend } from '../src/backend/cuda/index.ts';
import { attentionGeometry } from '../src/backend/cuda/kernels/attention.ts';
import { eventTimer } from './cuda-events.ts';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '50' } } });
const reps = Number(values.reps);
const backend = tryCreateCudaBackend();
if (typeof backend === 'string') throw new Error(backend);
T.setDefaultBackend(backend);
T.setRandomContext(new T.RandomContext(1));
const timer = eventTimer(backend);

const SHAPES = [
  { name: 'paper', B: 8, H: 2, S: 256, D: 64 },
  { name: 'large', B: 32, H: 8, S: 256, D: 64 },
];

interface Variant {
  readonly label: string;
  readonly implementation: nn.AttentionImplementation;
  readonly internalFormat?: T.Format16;
  readonly stored16?: boolean;
}
const VARIANTS: readonly Variant[] = [
  { label: 'materialised', implementation: 'materialised' },
  { label: 'fused', implementation: 'fused' },
  { label: 'copies', implementation: 'copies' },
  { label: 'fused bf16', implementation: 'fused', internalFormat: 'bf16' },
  { label: 'fused fp16', implementation: 'fused', internalFormat: 'fp16' },
  { label: 'fused bf16 16-bit storage', implementation: 'fused', internalFormat: 'bf16', stored16: true },
];
const COPIES = VARIANTS.findIndex((v) => v.implementation === 'copies');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: string[] = [];
for (const { name, B, H, S, D } of SHAPES) {
  const qkv = T.persistent(() => T.randomUniform([B, S, 3 * H * D], 1, 1, -1, 1));
  qkv.requiresGrad = true;
  const weights = T.persistent(() => T.randomUniform([B, S, H, D], 1, 2, -1, 1));
  const qkv16 = T.persistent(() => T.copy16(qkv, 'bf16'));
  qkv16.requiresGrad = true;
  const weights16 = T.persistent(() => T.copy16(weights, 'bf16'));
  const graphs = VARIANTS.map(({ label: variant, implementation, internalFormat, stored16 }) => {
    const step = () =>
      T.tidy(() => {
        process.env.REPRO_ATTENTION = implementation;
        const source = stored16 ? qkv16 : qkv;
        const part = (i: number) => T.headsView(source, [B, H, S, D], [S * 3 * H * D, D, 3 * H * D], i * H * D);
        const out = nn.scaledDotProductAttentionHeads(part(0), part(1), part(2), nn.REGULAR, {
          causal: true,
          internalFormat,
          outputFormat: stored16 ? internalFormat : undefined,
          gradStorage16: stored16,
        });
        T.backward(out, stored16 ? weights16 : weights);
      });
    step();
    step();
    backend.synchronize();
    return { variant, graph: backend.captureGraph(step) };
  });
  const times = new Map<string, number[]>(graphs.map((g) => [g.variant, []]));
  for (let r = 0; r < reps; r++) {
    for (const { variant, graph } of graphs) {
      timer.around(() => graph.replay());
      times.get(variant)!.push(...timer.collect());
    }
  }
  const ms = VARIANTS.map((v) => median(times.get(v.label)!));
  rows.push(`| ${name} B ${B} H ${H} S ${S} D ${D} | ${ms.map((x) => x.toFixed(3)).join(' | ')} | ${ms.map((x) => (ms[COPIES]! / x).toFixed(2) + 'x').join(' | ')} |`);
  graphs.forEach((g) => g.graph.dispose());
  for (const t of [qkv, weights, qkv16, weights16]) t.dispose();
}
console.log(`fused kernels: ${attentionGeometry().rowsPerThread} score rows per thread`);
console.log(`| causal self-attention, forward + backward | ${VARIANTS.map((v) => `${v.label} ms`).join(' | ')} | ${VARIANTS.map((v) => `${v.label} vs copies`).join(' | ')} |`);
console.log(`|---|${VARIANTS.map(() => '---|---').join('|')}|`);
for (const r of rows) console.log(r);
