import type { Backend } from '../backend/backend.ts';
import type { TokenBatch } from '../models/types.ts';
import * as T from '../tensor/index.ts';
import type { Batch, WindowOptions } from '../data/batching.ts';

/** A backend that can record a sequence of kernels once and replay it (the CUDA backend). */
interface GraphBackend extends Backend {
  captureGraph(fn: () => void): { replay(): void; dispose(): void };
}

function canCapture(backend: Backend): backend is GraphBackend {
  return typeof (backend as Partial<GraphBackend>).captureGraph === 'function';
}

/** Eager steps before capture: the first creates gradients and optimiser state, the second shows
 * the allocator the steady-state pattern a capture may then only reuse. */
const WARM_UP_STEPS = 2;

/**
 * Runs the training step either eagerly or, on a backend with CUDA graphs and when the step is
 * the same every time (static loss scale), as one captured graph replayed each step: the small
 * char-LMs launch hundreds of kernels per step and are bound by launch cost, not arithmetic.
 * The batch is uploaded into persistent input tensors before each step (host copies cannot be
 * part of a graph); everything inside `step` runs on the device only.
 */
export class StepRunner {
  readonly inputs: TokenBatch;
  private graph: { replay(): void; dispose(): void } | null = null;
  private eagerSteps = 0;

  constructor(
    private readonly backend: Backend,
    windows: WindowOptions,
    private readonly step: () => void,
    private readonly useGraph: boolean,
  ) {
    const shape = [windows.sequences, windows.sequenceLength];
    this.inputs = T.persistent(() => ({ tokens: T.zeros(shape, 'i32', backend), mask: T.zeros(shape, 'f32', backend) }));
  }

  get capturing(): boolean {
    return this.useGraph && canCapture(this.backend);
  }

  run(batch: Batch): void {
    this.backend.write(this.inputs.tokens.storage, batch.tokens);
    this.backend.write(this.inputs.mask.storage, batch.mask);
    if (this.graph) {
      this.graph.replay();
      return;
    }
    if (this.capturing && this.eagerSteps >= WARM_UP_STEPS && canCapture(this.backend)) {
      // Capturing records the step without running it; replay once to do this step's work.
      this.graph = this.backend.captureGraph(this.step);
      this.graph.replay();
      return;
    }
    this.step();
    this.eagerSteps++;
  }

  dispose(): void {
    this.graph?.dispose();
    this.inputs.tokens.dispose();
    this.inputs.mask.dispose();
  }
}
