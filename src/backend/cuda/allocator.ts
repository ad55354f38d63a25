/**
 * Caching device allocator. Freed blocks go to a free list per size class and are handed out
 * again, so a training step that allocates the same sizes every time stops calling cuMemAlloc
 * after the first step (design note 3), which CUDA-graph capture requires. All work runs on one
 * stream, so a block freed by the host can be reused at once: later kernels are queued after the
 * ones that still read it.
 *
 * While a graph is being captured, allocation only takes cached blocks, and blocks freed during
 * the capture are kept by the graph until it is disposed: the graph's replays write them, so they
 * must not be handed to anything else in the meantime.
 */

/** Device memory calls the allocator needs (the backend passes the driver's). */
export interface DeviceMemory {
  /** Returns a device address, or null when the device is out of memory. */
  allocate(bytes: number): number | null;
  free(address: number): void;
  /** Waits for queued work, before memory is given back to the driver. */
  synchronize(): void;
}

export interface Block {
  readonly address: number;
  /** Bytes reserved for the block (its size class). */
  readonly classBytes: number;
}

const SMALL_LIMIT = 1 << 20;
const SMALL_STEP = 512;

/**
 * Size classes: multiples of 512 bytes up to 1 MiB; above that four classes per power of two
 * (at most 25% slack), so steps whose tensor sizes drift a little still hit the cache.
 */
export function sizeClass(bytes: number): number {
  if (bytes <= SMALL_LIMIT) return Math.max(SMALL_STEP, Math.ceil(bytes / SMALL_STEP) * SMALL_STEP);
  const power = 2 ** Math.floor(Math.log2(bytes));
  const quarter = power / 4;
  return Math.ceil(bytes / quarter) * quarter;
}

export class CaptureAllocationError extends Error {
  constructor(bytes: number) {
    super(
      `the caching allocator has no free ${bytes}-byte block while a CUDA graph is being captured, and ` +
        'cuMemAlloc is not allowed during capture: run the captured step once eagerly first (a warm-up step) so its memory is cached',
    );
    this.name = 'CaptureAllocationError';
  }
}

export class CachingAllocator {
  private readonly free = new Map<number, number[]>();
  private reservedBytes = 0;
  private cachedBytes = 0;
  private capturing = false;
  private capturedFrees: Block[] = [];
  /** cuMemAlloc calls made, for tests of steady-state reuse. */
  deviceAllocations = 0;

  constructor(private readonly memory: DeviceMemory) {}

  allocate(bytes: number): Block {
    const classBytes = sizeClass(bytes);
    if (this.capturing) {
      const reused = this.takeCapturedFree(classBytes);
      if (reused) return reused;
    }
    const list = this.free.get(classBytes);
    if (list && list.length > 0) {
      this.cachedBytes -= classBytes;
      return { address: list.pop()!, classBytes };
    }
    if (this.capturing) throw new CaptureAllocationError(bytes);
    let address = this.memory.allocate(classBytes);
    if (address === null) {
      this.emptyCache();
      address = this.memory.allocate(classBytes);
      if (address === null) {
        throw new Error(`CUDA out of memory allocating ${classBytes} bytes (${this.reservedBytes} bytes already reserved by this process)`);
      }
    }
    this.deviceAllocations++;
    this.reservedBytes += classBytes;
    return { address, classBytes };
  }

  release(block: Block): void {
    if (this.capturing) {
      this.capturedFrees.push(block);
      return;
    }
    this.cache(block);
  }

  beginCapture(): void {
    if (this.capturing) throw new Error('a CUDA graph capture is already in progress');
    this.capturing = true;
    this.capturedFrees = [];
  }

  /** Ends the capture; returns the blocks freed during it, which the graph now owns. */
  endCapture(): Block[] {
    this.capturing = false;
    const owned = this.capturedFrees;
    this.capturedFrees = [];
    return owned;
  }

  get isCapturing(): boolean {
    return this.capturing;
  }

  /** Blocks a disposed graph owned become ordinary cached blocks. */
  returnBlocks(blocks: readonly Block[]): void {
    for (const block of blocks) this.cache(block);
  }

  /** Gives every cached block back to the driver. */
  emptyCache(): void {
    if (this.cachedBytes === 0) return;
    this.memory.synchronize();
    for (const [classBytes, list] of this.free) {
      for (const address of list) {
        this.memory.free(address);
        this.reservedBytes -= classBytes;
      }
    }
    this.free.clear();
    this.cachedBytes = 0;
  }

  /** Device bytes obtained from the driver and not given back (in use + cached). */
  get reserved(): number {
    return this.reservedBytes;
  }

  private cache(block: Block): void {
    let list = this.free.get(block.classBytes);
    if (!list) this.free.set(block.classBytes, (list = []));
    list.push(block.address);
    this.cachedBytes += block.classBytes;
  }

  /** Within a capture a block freed earlier in the same capture can be reused: stream order holds. */
  private takeCapturedFree(classBytes: number): Block | null {
    const index = this.capturedFrees.findIndex((b) => b.classBytes === classBytes);
    if (index < 0) return null;
    return this.capturedFrees.splice(index, 1)[0]!;
  }
}
