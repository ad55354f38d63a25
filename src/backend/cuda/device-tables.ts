/**
 * Device-resident tables that multi-tensor kernels (adamw_multi, quantise_multi) read: one entry
 * per tensor, uploaded by a host copy. A graph capture does not allow that copy, so the eager
 * warm-up step builds each table and the captured step finds it here. A key covers everything a
 * table holds, so a hit is always the right table.
 */
import type { Block } from './allocator.ts';
import { checkDriver } from './driver-api.ts';
import type { CudaRuntime } from './runtime.ts';

export interface DeviceTable {
  readonly block: Block;
  readonly count: number;
  readonly chunks: number;
  /** Used by a captured graph, whose replays read this address until it is disposed, which the
   * cache cannot see: such a table is kept for the backend's life rather than evicted. */
  pinned: boolean;
}

/** A table's bytes as the kernel reads them, with its entry and work-chunk counts. */
export interface TableImage {
  readonly buffer: ArrayBuffer;
  readonly count: number;
  readonly chunks: number;
}

export class DeviceTables {
  private readonly tables = new Map<string, DeviceTable>();

  constructor(
    /** The op named in errors. */
    private readonly op: string,
    /** Unpinned tables kept; an optimiser needs one, a few cover tests and sweeps. */
    private readonly limit = 8,
  ) {}

  get size(): number {
    return this.tables.size;
  }

  /** The table under `key`, built by `image` (and uploaded) on a miss. */
  lookup(rt: CudaRuntime, key: string, image: () => TableImage): DeviceTable {
    const found = this.tables.get(key);
    if (found) {
      // Most recently used last, so eviction takes the stalest.
      this.tables.delete(key);
      this.tables.set(key, found);
      if (rt.allocator.isCapturing) found.pinned = true;
      return found;
    }
    if (rt.allocator.isCapturing) {
      throw new Error(
        `${this.op}: no device table for these tensors while a CUDA graph is being captured (uploading one is a host copy, ` +
          'which capture does not allow): run the same step once eagerly before capturing',
      );
    }
    const { buffer, count, chunks } = image();
    if (chunks > 0x7fffffff) throw new RangeError(`${this.op}: ${chunks} chunks exceed the kernel's 32-bit indexing`);
    const block = rt.allocateScratch(buffer.byteLength);
    checkDriver(rt.api, 'cuMemcpyHtoDAsync', rt.api.cuMemcpyHtoDAsync_v2(block.address, new Uint32Array(buffer), buffer.byteLength, rt.stream));
    const table: DeviceTable = { block, count, chunks, pinned: false };
    this.tables.set(key, table);
    this.evict(rt);
    return table;
  }

  private evict(rt: CudaRuntime): void {
    let unpinned = 0;
    for (const table of this.tables.values()) if (!table.pinned) unpinned++;
    for (const [key, table] of this.tables) {
      if (unpinned <= this.limit) return;
      if (table.pinned) continue;
      // One stream: kernels queued earlier still read the block before anything reuses it.
      rt.releaseScratch(table.block);
      this.tables.delete(key);
      unpinned--;
    }
  }
}

/** Refuses a table in which two entries name one storage: the kernel runs entries concurrently. */
export function checkDistinctStorages(op: string, addressesOf: readonly (readonly number[])[]): void {
  const owner = new Map<number, number>();
  addressesOf.forEach((addresses, i) => {
    for (const address of addresses) {
      const j = owner.get(address);
      // Live storages at one address are one storage.
      if (j !== undefined && j !== i) throw new Error(`${op}: tensors ${j} and ${i} share a storage`);
      owner.set(address, i);
    }
  });
}

const TWO_32 = 4294967296;

/** Writes a device address as two 32-bit words (low first) at word w. */
export function writeAddress(u32: Uint32Array, w: number, address: number): void {
  u32[w] = address % TWO_32;
  u32[w + 1] = Math.floor(address / TWO_32);
}

/**
 * The image of a table of entries of `words` 32-bit words each, every entry's n elements cut into
 * `chunk`-element chunks: `write` fills entry i from word w, given the entry's first chunk.
 */
export function tableImage<E extends { readonly n: number }>(
  entries: readonly E[],
  words: number,
  chunk: number,
  write: (u32: Uint32Array, i32: Int32Array, w: number, entry: E, chunkStart: number) => void,
): TableImage {
  const buffer = new ArrayBuffer(entries.length * words * 4);
  const u32 = new Uint32Array(buffer), i32 = new Int32Array(buffer);
  let chunks = 0;
  entries.forEach((entry, index) => {
    write(u32, i32, index * words, entry, chunks);
    chunks += Math.ceil(entry.n / chunk);
  });
  return { buffer, count: entries.length, chunks };
}
