// Shared by bench/lanes-replay.ts and bench/launch-rate.ts: CUDA backends of their own ("lanes"),
// each replaying one captured graph, driven round by round.
import type { CudaBackend } from '../src/backend/cuda/backend.ts';

export interface GraphLane {
  readonly backend: CudaBackend;
  replay(): void;
  dispose(): void;
}

/**
 * Runs `body` twice (so the caching allocator has its memory), captures it as a CUDA graph on
 * `backend` and replays it once; `release` frees what body used, after the graph.
 */
export function graphLane(backend: CudaBackend, body: () => void, release: () => void): GraphLane {
  body();
  body();
  backend.synchronize();
  const graph = backend.captureGraph(body);
  graph.replay();
  backend.synchronize();
  return {
    backend,
    replay: () => graph.replay(),
    dispose: () => {
      graph.dispose();
      release();
      backend.destroy();
    },
  };
}

/** Replays every lane's graph once per round, keeping at most two rounds queued (as the trainer's queue limit does); the seconds it took. */
export function replayRounds(lanes: readonly GraphLane[], rounds: number): number {
  const start = performance.now();
  for (let r = 0; r < rounds; r++) {
    for (const lane of lanes) lane.replay();
    if (r % 2 === 1) for (const lane of lanes) lane.backend.synchronize();
  }
  for (const lane of lanes) lane.backend.synchronize();
  return (performance.now() - start) / 1000;
}
