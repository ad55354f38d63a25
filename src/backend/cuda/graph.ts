/** A captured, instantiated CUDA graph: replayed on the backend's stream with one driver call. */
import type { Block } from './allocator.ts';
import { checkDriver, type DriverApi, type Handle } from './driver-api.ts';

export class CudaGraph {
  private disposed = false;
  /** Replays so far. */
  replays = 0;

  constructor(
    private readonly api: DriverApi,
    private readonly stream: Handle,
    private readonly graph: Handle,
    private readonly exec: Handle,
    /** Device blocks freed during capture: the replays write them, so the graph keeps them. */
    private readonly ownedBlocks: readonly Block[],
    private readonly giveBack: (blocks: readonly Block[]) => void,
  ) {}

  /** Queues every captured kernel again (no host synchronisation). */
  replay(): void {
    if (this.disposed) throw new Error('CudaGraph.replay: the graph was disposed');
    checkDriver(this.api, 'cuGraphLaunch', this.api.cuGraphLaunch(this.exec, this.stream));
    this.replays++;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // A replay still queued reads the graph's memory: wait before giving the blocks back.
    checkDriver(this.api, 'cuStreamSynchronize', this.api.cuStreamSynchronize(this.stream));
    checkDriver(this.api, 'cuGraphExecDestroy', this.api.cuGraphExecDestroy(this.exec));
    checkDriver(this.api, 'cuGraphDestroy', this.api.cuGraphDestroy(this.graph));
    this.giveBack(this.ownedBlocks);
  }
}
