/** Host side of `reduce`: picks the column kernel for a reduced middle block, else the general one. */
import type { ReduceKind, Storage } from '../backend.ts';
import { checkDriver } from './driver-api.ts';
import { MAX_RANK } from './kernels/prelude.ts';
import { REDUCE_DIMS_WORDS, REDUCE_MODULE } from './kernels/reduce.ts';
import { asCuda, type CudaRuntime } from './runtime.ts';
import { checkCount, collapse, contiguousStrides } from './strided.ts';

/** Rows of mid per block when a column reduction is split (fixed: the summation order is deterministic). */
const SPLIT_CHUNK_ROWS = 256;
const INITIAL: Record<ReduceKind, number> = { sum: 0, sumSquares: 0, max: -Infinity, min: Infinity };
const bits = new Float32Array(1);
const bitsU32 = new Uint32Array(bits.buffer);

export function reduce(rt: CudaRuntime, kind: ReduceKind, x: Storage, xShape: readonly number[], out: Storage, outShape: readonly number[], scale: number): void {
  const op = `reduce ${kind}`;
  if (xShape.length !== outShape.length) throw new RangeError(`${op}: x has rank ${xShape.length}, out rank ${outShape.length}`);
  outShape.forEach((d, i) => {
    if (d !== xShape[i] && d !== 1) throw new RangeError(`${op}: out shape [${outShape.join(', ')}] does not reduce [${xShape.join(', ')}]`);
  });
  if (x.dtype !== 'f32' || out.dtype !== 'f32') throw new TypeError(`${op}: the CUDA kernel needs float32 storage`);
  const total = xShape.reduce((p, d) => p * d, 1);
  const outputs = outShape.reduce((p, d) => p * d, 1);
  checkCount(op, 'x', x, total);
  checkCount(op, 'out', out, outputs);
  if (outputs === 0) return;
  const xa = asCuda(x, op).address;
  const oa = asCuda(out, op).address;
  if (total === 0) {
    bits[0] = scale * INITIAL[kind];
    checkDriver(rt.api, 'cuMemsetD32Async', rt.api.cuMemsetD32Async(oa, bitsU32[0]!, outputs, rt.stream));
    return;
  }
  const reducedAxes = xShape.map((d, i) => i).filter((i) => outShape[i] !== xShape[i]);
  const first = reducedAxes[0];
  const lastAxis = reducedAxes[reducedAxes.length - 1];
  if (first !== undefined && lastAxis !== undefined && lastAxis - first === reducedAxes.length - 1) {
    const outer = xShape.slice(0, first).reduce((p, d) => p * d, 1);
    const mid = xShape.slice(first, lastAxis + 1).reduce((p, d) => p * d, 1);
    const inner = xShape.slice(lastAxis + 1).reduce((p, d) => p * d, 1);
    if (inner > 1) {
      const columnBlocks = Math.ceil(inner / 32);
      const chunks = Math.ceil(mid / SPLIT_CHUNK_ROWS);
      if (columnBlocks * outer < rt.multiprocessors && chunks > 1 && outer * chunks <= 65535) {
        // Too few blocks to fill the device: fixed chunks of mid in parallel, combined in order by
        // the last block to finish (one launch; outer·inner < 32·multiprocessors outputs here).
        const bytes = (kind === 'max' || kind === 'min' ? 4 : 8) * outer * chunks * inner;
        const scratch = rt.allocateScratch(bytes);
        const partial = rt.kernel(REDUCE_MODULE, `reduce_mid_partial_${kind}`, ['p', 'p', 'i', 'i', 'i', 'i', 'i', 'p', 'd', 'p']);
        rt.launch(partial, columnBlocks, outer * chunks, 1024, [xa, scratch.address, outer, mid, inner, SPLIT_CHUNK_ROWS, chunks, oa, scale, rt.lastBlockCounter]);
        rt.releaseScratch(scratch);
        return;
      }
      if (mid <= 32 && outer * inner <= 0x7fffffff) {
        rt.launchLinear(rt.kernel(REDUCE_MODULE, `reduce_mid_serial_${kind}`, ['p', 'p', 'i', 'i', 'i', 'd']), outer * inner, [xa, oa, outer, mid, inner, scale]);
        return;
      }
      const kernel = rt.kernel(REDUCE_MODULE, `reduce_mid_${kind}`, ['p', 'p', 'i', 'i', 'i', 'd']);
      rt.launch(kernel, Math.ceil(inner / 32), Math.min(outer, 65535), 1024, [xa, oa, outer, mid, inner, scale]);
      return;
    }
  }
  const xStrides = contiguousStrides(xShape);
  const isReduced = (i: number): boolean => outShape[i] !== xShape[i];
  const keptAxes = xShape.map((d, i) => i).filter((i) => !isReduced(i));
  const kept = collapse(keptAxes.map((i) => xShape[i]!), [keptAxes.map((i) => xStrides[i]!)]);
  const reduced = collapse(reducedAxes.map((i) => xShape[i]!), [reducedAxes.map((i) => xStrides[i]!)]);
  if (kept.shape.length > MAX_RANK || reduced.shape.length > MAX_RANK) {
    throw new Error(`${op}: [${xShape.join(', ')}] → [${outShape.join(', ')}] needs more than ${MAX_RANK} dimensions after collapsing`);
  }
  const dims = new Int32Array(REDUCE_DIMS_WORDS);
  dims[0] = kept.shape.length;
  kept.shape.forEach((d, i) => {
    dims[1 + i] = d;
    dims[1 + MAX_RANK + i] = kept.strides[0]![i]!;
  });
  const red = 1 + 2 * MAX_RANK;
  dims[red] = reduced.shape.length;
  reduced.shape.forEach((d, i) => {
    dims[red + 1 + i] = d;
    dims[red + 1 + MAX_RANK + i] = reduced.strides[0]![i]!;
  });
  const count = reduced.count;
  const block = count <= 32 ? 32 : count <= 128 ? 128 : 256;
  const kernel = rt.kernel(REDUCE_MODULE, `reduce_general_${kind}`, ['p', 'p', 'i', 'i', `s${REDUCE_DIMS_WORDS}`, 'd']);
  rt.launch(kernel, Math.min(outputs, 65535 * 4), 1, block, [xa, oa, outputs, count, dims, scale]);
}
