/**
 * What every CUDA kernel wrapper needs: the device, the backend's one stream, the kernel
 * registry, device storage from the caching allocator, and launch-size helpers.
 */
import { bytesPerElement, type DeviceFence, type DType, type Storage } from '../backend.ts';
import { CachingAllocator, type Block } from './allocator.ts';
import { checkDriver, CU_EVENT_DISABLE_TIMING, CU_STREAM_NON_BLOCKING, type DriverApi, type Handle } from './driver-api.ts';

/** cuEventQuery's answer for work still queued. */
const CUDA_ERROR_NOT_READY = 600;
import type { OpenDevice } from './device.ts';
import type { KernelArg, ParamKind, Kernel } from './launch.ts';
import type { KernelModuleSource, KernelRegistry } from './modules.ts';

/** Device memory holding `size` elements of `dtype` (4 bytes each, 2 for 16-bit storage). */
export class CudaStorage implements Storage {
  released = false;
  constructor(
    readonly size: number,
    readonly dtype: DType,
    readonly block: Block,
  ) {}

  get address(): number {
    return this.block.address;
  }
}

const LINEAR_BLOCK = 256;
const WARP_ROWS_PER_BLOCK = 4;

export class CudaRuntime {
  readonly api: DriverApi;
  readonly stream: Handle;
  readonly allocator: CachingAllocator;
  private readonly maxLinearBlocks: number;
  private allocatedBytes = 0;
  private peakBytes = 0;
  private counterBlock: Block | null = null;

  constructor(
    readonly device: OpenDevice,
    readonly registry: KernelRegistry,
  ) {
    this.api = device.api;
    const streamOut = new BigUint64Array(1);
    checkDriver(this.api, 'cuStreamCreate', this.api.cuStreamCreate(streamOut, CU_STREAM_NON_BLOCKING));
    this.stream = streamOut[0]!;
    const api = this.api;
    const out = new BigUint64Array(1);
    this.allocator = new CachingAllocator({
      allocate: (bytes) => {
        const code = api.cuMemAlloc_v2(out, bytes);
        if (code === 2 /* CUDA_ERROR_OUT_OF_MEMORY */) return null;
        checkDriver(api, 'cuMemAlloc', code);
        return Number(out[0]);
      },
      free: (address) => checkDriver(api, 'cuMemFree', api.cuMemFree_v2(address)),
      synchronize: () => this.synchronize(),
    });
    // Enough resident blocks to fill every multiprocessor; grid-stride loops cover the rest.
    this.maxLinearBlocks = Math.max(1, device.info.multiprocessors * 16);
  }

  alloc(size: number, dtype: DType): CudaStorage {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`alloc: size must be a non-negative integer, got ${size}`);
    if (size > 0x7fffffff) throw new RangeError(`alloc: ${size} elements exceed the CUDA kernels' 32-bit indexing`);
    const bytes = size * bytesPerElement(dtype);
    const block = this.allocator.allocate(Math.max(4, bytes));
    this.allocatedBytes += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.allocatedBytes);
    return new CudaStorage(size, dtype, block);
  }

  release(storage: Storage): void {
    const s = asCuda(storage, 'release');
    if (s.released) throw new Error('release: storage released twice');
    s.released = true;
    this.allocatedBytes -= s.size * bytesPerElement(s.dtype);
    this.allocator.release(s.block);
  }

  memoryStats(): { allocatedBytes: number; peakBytes: number; reservedBytes: number } {
    return { allocatedBytes: this.allocatedBytes, peakBytes: this.peakBytes, reservedBytes: this.allocator.reserved };
  }

  resetPeakMemory(): void {
    this.peakBytes = this.allocatedBytes;
  }

  /** Scratch for a kernel's own use (e.g. packed GEMM operands); free it right after queuing. */
  allocateScratch(bytes: number): Block {
    return this.allocator.allocate(bytes);
  }

  releaseScratch(block: Block): void {
    this.allocator.release(block);
  }

  /**
   * A device word, zero between launches, for kernels whose last block to finish completes the
   * reduction (kernels/reduce.ts): the blocks count themselves on it and the last one sets it back
   * to zero, so one word serves every launch on this stream, graph replays included. Allocated on
   * first use (a warm-up step, before any capture).
   */
  get lastBlockCounter(): number {
    if (!this.counterBlock) {
      this.counterBlock = this.allocator.allocate(4);
      checkDriver(this.api, 'cuMemsetD32Async', this.api.cuMemsetD32Async(this.counterBlock.address, 0, 1, this.stream));
    }
    return this.counterBlock.address;
  }

  kernel(module: KernelModuleSource, name: string, kinds: readonly ParamKind[]): Kernel {
    return this.registry.kernel(module, name, kinds);
  }

  /** A grid-stride kernel over `count` items, 256 threads a block. */
  launchLinear(kernel: Kernel, count: number, args: readonly KernelArg[]): void {
    if (count <= 0) return;
    const blocks = Math.min(Math.ceil(count / LINEAR_BLOCK), this.maxLinearBlocks);
    kernel.launch(this.stream, blocks, 1, LINEAR_BLOCK, 0, args);
  }

  /** One block per row (grid-stride over rows), sized to the row length. */
  launchRows(kernel: Kernel, rows: number, cols: number, args: readonly KernelArg[]): void {
    if (rows <= 0) return;
    kernel.launch(this.stream, Math.min(rows, this.maxLinearBlocks * 2), 1, rowBlockSize(cols), 0, args);
  }

  /** One warp per row, WARP_ROWS_PER_BLOCK rows a block (grid-stride over rows). */
  launchWarpRows(kernel: Kernel, rows: number, args: readonly KernelArg[]): void {
    if (rows <= 0) return;
    const blocks = Math.min(Math.ceil(rows / WARP_ROWS_PER_BLOCK), this.maxLinearBlocks * 4);
    kernel.launch(this.stream, blocks, 1, 32 * WARP_ROWS_PER_BLOCK, 0, args);
  }

  /** Multiprocessors of the device (for sizing split reductions). */
  get multiprocessors(): number {
    return this.device.info.multiprocessors;
  }

  launch(kernel: Kernel, gridX: number, gridY: number, block: number, args: readonly KernelArg[]): void {
    kernel.launch(this.stream, gridX, gridY, block, 0, args);
  }

  private readonly spareEvents: Handle[] = [];

  /** An event recorded on the stream now; done() polls it (cuEventQuery). */
  fence(): DeviceFence {
    if (this.allocator.isCapturing) throw new Error('fence: not allowed while a CUDA graph is being captured');
    const api = this.api;
    let event = this.spareEvents.pop();
    if (event === undefined) {
      const out = new BigUint64Array(1);
      checkDriver(api, 'cuEventCreate', api.cuEventCreate(out, CU_EVENT_DISABLE_TIMING));
      event = out[0]!;
    }
    checkDriver(api, 'cuEventRecord', api.cuEventRecord(event, this.stream));
    let disposed = false;
    return {
      done: () => {
        if (disposed) throw new Error('fence: used after dispose');
        const code = api.cuEventQuery(event);
        if (code === CUDA_ERROR_NOT_READY) return false;
        checkDriver(api, 'cuEventQuery', code);
        return true;
      },
      dispose: () => {
        if (disposed) return;
        disposed = true;
        this.spareEvents.push(event);
      },
    };
  }

  /** Frees the allocator's cached memory, the spare events and the stream (CudaBackend.destroy). */
  destroy(): void {
    this.synchronize();
    if (this.counterBlock) this.allocator.release(this.counterBlock);
    this.counterBlock = null;
    this.allocator.emptyCache();
    for (const event of this.spareEvents.splice(0)) checkDriver(this.api, 'cuEventDestroy', this.api.cuEventDestroy_v2(event));
    checkDriver(this.api, 'cuStreamDestroy', this.api.cuStreamDestroy_v2(this.stream));
  }

  synchronize(): void {
    if (this.allocator.isCapturing) throw new Error('synchronize: not allowed while a CUDA graph is being captured');
    checkDriver(this.api, 'cuStreamSynchronize', this.api.cuStreamSynchronize(this.stream));
  }
}

/** Threads for a row kernel: the row length rounded up to a warp multiple, 32..1024. */
export function rowBlockSize(cols: number): number {
  if (cols <= 256) return Math.max(32, 2 ** Math.ceil(Math.log2(Math.max(cols, 1))));
  return Math.min(1024, 2 ** Math.ceil(Math.log2(cols / 4)));
}

export function asCuda(storage: Storage, op: string): CudaStorage {
  if (!(storage instanceof CudaStorage)) throw new Error(`${op}: storage does not belong to the CUDA backend`);
  if (storage.released) throw new Error(`${op}: storage was released`);
  return storage;
}

/** Device address of element `offset` of a storage. */
export function addressAt(storage: Storage, offset: number, op: string): number {
  return asCuda(storage, op).address + bytesPerElement(storage.dtype) * offset;
}
