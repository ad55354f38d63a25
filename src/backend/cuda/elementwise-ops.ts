/** Host wrappers of the element-wise kernels (unary, binary, where, copy, fill). */
import type { BinaryKind, Copy16, Format16, Storage, StridedView, UnaryKind } from '../backend.ts';
import { checkDriver } from './driver-api.ts';
import { isFormat16 } from '../backend.ts';
import { encode16 } from './codes16.ts';
import { checkUnaryStorage } from '../unary-rules.ts';
import { COPY16_CHUNK, COPY16_TABLE_WORDS, ELEMENTWISE_MODULE } from './kernels/elementwise.ts';
import { tableImage, writeAddress, type DeviceTables } from './device-tables.ts';
import { copies16Format } from '../copy16-rules.ts';
import { readFormatCode, storageFormatCode, STRIDED_WORDS } from './kernels/prelude.ts';
import { addressAt, asCuda, type CudaRuntime } from './runtime.ts';
import { checkCount, checkView, collapse, contiguousStrides, isInjective, packStrided, vectorise, type Collapsed } from './strided.ts';

const STRUCT = `s${STRIDED_WORDS}` as const;

function requireFloat(op: string, ...storages: Storage[]): void {
  for (const s of storages) {
    if (s.dtype !== 'f32') throw new TypeError(`${op}: the CUDA kernel needs float32 storage, got ${s.dtype}`);
  }
}

const fillBits = new Float32Array(1);
const fillBitsU32 = new Uint32Array(fillBits.buffer);

export function fill(rt: CudaRuntime, out: Storage, offset: number, n: number, value: number): void {
  checkCount('fill', 'out', out, n, offset);
  if (n === 0) return;
  if (isFormat16(out.dtype)) {
    // The value rounded to the storage's format, as write() stores it.
    const code = encode16(Float32Array.of(value), out.dtype)[0]!;
    checkDriver(rt.api, 'cuMemsetD16Async', rt.api.cuMemsetD16Async(addressAt(out, offset, 'fill'), code, n, rt.stream));
    return;
  }
  let word: number;
  if (out.dtype === 'f32') {
    fillBits[0] = value;
    word = fillBitsU32[0]!;
  } else word = (value | 0) >>> 0;
  checkDriver(rt.api, 'cuMemsetD32Async', rt.api.cuMemsetD32Async(addressAt(out, offset, 'fill'), word, n, rt.stream));
}

export function unary(rt: CudaRuntime, kind: UnaryKind, x: Storage, out: Storage, n: number, inScale: number, outScale: number, readFormat?: Format16): void {
  checkCount(`unary ${kind}`, 'x', x, n);
  checkCount(`unary ${kind}`, 'out', out, n);
  checkUnaryStorage(`unary ${kind}`, kind, readFormat, [['x', x]], out);
  const outFmt = storageFormatCode(out.dtype);
  if (n === 0) return;
  const xa = asCuda(x, 'unary').address;
  const oa = asCuda(out, 'unary').address;
  if (kind === 'copy' && readFormat === undefined && outFmt === 0 && x.dtype === 'f32') {
    const s = inScale * outScale;
    if (s === 1) {
      if (xa !== oa) checkDriver(rt.api, 'cuMemcpyDtoDAsync', rt.api.cuMemcpyDtoDAsync_v2(oa, xa, 4 * n, rt.stream));
      return;
    }
    rt.launchLinear(rt.kernel(ELEMENTWISE_MODULE, 'scale_copy', ['p', 'p', 'i', 'f', 'i']), Math.ceil(n / 4), [xa, oa, n, s, aligned(xa, oa)]);
    return;
  }
  rt.launchLinear(rt.kernel(ELEMENTWISE_MODULE, `unary_${kind}`, ['p', 'p', 'i', 'f', 'f', 'i', 'i', 'i', 'i']), Math.ceil(n / 4), [
    xa, oa, n, inScale, outScale, aligned(xa, oa), readFormatCode(readFormat), outFmt, x.dtype === 'f32' ? 0 : 1,
  ]);
}

/** 1 when every address allows float4 access. */
function aligned(...addresses: number[]): number {
  return addresses.every((a) => a % 16 === 0) ? 1 : 0;
}

/** Launches the float4 variant when the views allow it, else the scalar one. */
function launchStrided(
  rt: CudaRuntime,
  name: string,
  pointers: readonly number[],
  c: Collapsed,
  mustVector: readonly number[],
  scalars: readonly { kind: 'f'; value: number }[],
  op: string,
): void {
  const v = vectorise(c, pointers, mustVector);
  const pointerKinds = pointers.map(() => 'p' as const);
  const scalarKinds = scalars.map((x) => x.kind);
  const values = scalars.map((x) => x.value);
  if (v) {
    const kernel = rt.kernel(ELEMENTWISE_MODULE, `${name}_v4`, [...pointerKinds, 'i', STRUCT, 'i', ...scalarKinds]);
    rt.launchLinear(kernel, v.collapsed.count, [...pointers, v.collapsed.count, packStrided(v.collapsed, op), v.vectorMask, ...values]);
    return;
  }
  const kernel = rt.kernel(ELEMENTWISE_MODULE, `${name}_nd`, [...pointerKinds, 'i', STRUCT, ...scalarKinds]);
  rt.launchLinear(kernel, c.count, [...pointers, c.count, packStrided(c, op), ...values]);
}

export function unaryGrad(rt: CudaRuntime, kind: UnaryKind, x: Storage, gradOut: Storage, gradX: Storage, n: number, inScale: number, gradScale: number, readFormat?: Format16): void {
  for (const [name, s] of [['x', x], ['gradOut', gradOut], ['gradX', gradX]] as const) checkCount(`unaryGrad ${kind}`, name, s, n);
  checkUnaryStorage(`unaryGrad ${kind}`, kind, readFormat, [['x', x], ['gradOut', gradOut], ['gradX', gradX]]);
  const xa = asCuda(x, 'unaryGrad').address;
  const ga = asCuda(gradOut, 'unaryGrad').address;
  const gxa = asCuda(gradX, 'unaryGrad').address;
  const is16 = (s: Storage) => (s.dtype === 'f32' ? 0 : 1);
  rt.launchLinear(rt.kernel(ELEMENTWISE_MODULE, `unary_grad_${kind}`, ['p', 'p', 'p', 'i', 'f', 'f', 'i', 'i', 'i', 'i', 'i']), Math.ceil(n / 4), [
    xa, ga, gxa, n, inScale, gradScale * inScale, aligned(xa, ga, gxa), readFormatCode(readFormat), is16(x), is16(gradOut), is16(gradX),
  ]);
}

export function binary(
  rt: CudaRuntime,
  kind: BinaryKind,
  a: StridedView,
  b: StridedView,
  out: Storage,
  shape: readonly number[],
  scaleA: number,
  scaleB: number,
): void {
  const op = `binary ${kind}`;
  requireFloat(op, a.storage, b.storage, out);
  checkView(op, 'a', a, shape);
  checkView(op, 'b', b, shape);
  const c = collapse(shape, [a.strides, b.strides, contiguousStrides(shape)]);
  checkCount(op, 'out', out, c.count);
  if (c.count === 0) return;
  const s = kind === 'div' ? scaleA / scaleB : scaleA * scaleB;
  const pa = addressAt(a.storage, a.offset, op);
  const pb = addressAt(b.storage, b.offset, op);
  const po = asCuda(out, op).address;
  const f = (value: number) => ({ kind: 'f' as const, value });
  launchStrided(rt, `binary_${kind}`, [pa, pb, po], c, [2], [f(scaleA), f(scaleB), f(s)], op);
}

export function where(rt: CudaRuntime, cond: StridedView, a: StridedView, b: StridedView, out: Storage, shape: readonly number[]): void {
  requireFloat('where', cond.storage, a.storage, b.storage, out);
  checkView('where', 'cond', cond, shape);
  checkView('where', 'a', a, shape);
  checkView('where', 'b', b, shape);
  const c = collapse(shape, [cond.strides, a.strides, b.strides, contiguousStrides(shape)]);
  checkCount('where', 'out', out, c.count);
  if (c.count === 0) return;
  const pointers = [
    addressAt(cond.storage, cond.offset, 'where'),
    addressAt(a.storage, a.offset, 'where'),
    addressAt(b.storage, b.offset, 'where'),
    asCuda(out, 'where').address,
  ];
  launchStrided(rt, 'where', pointers, c, [3], [], 'where');
}

export function copy(rt: CudaRuntime, src: StridedView, dst: StridedView, shape: readonly number[], scale: number, accumulate: boolean): void {
  checkView('copy', 'src', src, shape);
  checkView('copy', 'dst', dst, shape);
  if (src.storage.dtype !== dst.storage.dtype) throw new TypeError(`copy: ${src.storage.dtype} source into ${dst.storage.dtype} destination`);
  const c = collapse(shape, [src.strides, dst.strides]);
  if (c.count === 0) return;
  const ps = addressAt(src.storage, src.offset, 'copy');
  const pd = addressAt(dst.storage, dst.offset, 'copy');
  if (!accumulate && scale === 1) {
    launchStrided(rt, 'copy_bits', [ps, pd], c, [1], [], 'copy');
    return;
  }
  requireFloat(accumulate ? 'copy (accumulate)' : 'copy (scaled)', src.storage);
  if (accumulate && !isInjective(c.shape, c.strides[1]!)) {
    const kernel = rt.kernel(ELEMENTWISE_MODULE, 'copy_accumulate_atomic_nd', ['p', 'p', 'i', STRUCT, 'f']);
    rt.launchLinear(kernel, c.count, [ps, pd, c.count, packStrided(c, 'copy'), scale]);
    return;
  }
  launchStrided(rt, accumulate ? 'copy_accumulate' : 'copy_scaled', [ps, pd], c, [1], [{ kind: 'f', value: scale }], 'copy');
}

/** Backend.copies16 in one launch of copy16_multi, through a cached device table of the copies. */
export function copies16(rt: CudaRuntime, tables: DeviceTables, pairs: readonly Copy16[]): void {
  const format = copies16Format(pairs);
  const copies = pairs.filter((p) => p.n > 0).map((p) => ({ src: asCuda(p.src, 'copies16').address, dst: asCuda(p.dst, 'copies16').address, n: p.n }));
  if (!format || copies.length === 0) return;
  const key = copies.map((c) => `${c.src},${c.dst},${c.n}`).join(';');
  const table = tables.lookup(rt, key, () =>
    tableImage(copies, COPY16_TABLE_WORDS, COPY16_CHUNK, (u32, i32, w, c, chunkStart) => {
      writeAddress(u32, w, c.src);
      writeAddress(u32, w + 2, c.dst);
      i32[w + 4] = c.n;
      i32[w + 5] = chunkStart;
      i32[w + 6] = aligned(c.src, c.dst);
    }),
  );
  rt.launch(rt.kernel(ELEMENTWISE_MODULE, 'copy16_multi', ['p', 'i', 'i', 'i']), Math.min(table.chunks, rt.multiprocessors * 16), 1, 256, [
    table.block.address, table.count, table.chunks, readFormatCode(format),
  ]);
}
