/**
 * Spreads parallel sweep workers over the GPUs: each new worker gets the GPU running the fewest
 * workers (so `--jobs N` packs N/G runs on each of G GPUs) and sees only that one, through
 * CUDA_VISIBLE_DEVICES. With one GPU or none, workers inherit the environment unchanged.
 */
export class GpuSlots {
  private readonly load: number[];

  constructor(
    gpuCount: number,
    /** The GPUs this process may use, as CUDA_VISIBLE_DEVICES lists them (default 0..n−1). */
    private readonly visible: readonly string[] = Array.from({ length: gpuCount }, (_, i) => String(i)),
  ) {
    this.load = new Array<number>(gpuCount).fill(0);
  }

  /** The environment for one worker and a release function to call when it ends. */
  acquire(): { env: NodeJS.ProcessEnv; release: () => void } {
    if (this.load.length <= 1) return { env: process.env, release: () => {} };
    let gpu = 0;
    for (let i = 1; i < this.load.length; i++) if (this.load[i]! < this.load[gpu]!) gpu = i;
    this.load[gpu]!++;
    let released = false;
    return {
      env: { ...process.env, CUDA_VISIBLE_DEVICES: this.visible[gpu] },
      release: () => {
        if (!released) this.load[gpu]!--;
        released = true;
      },
    };
  }
}

/** The GPU ids a parent process may hand out, from its own CUDA_VISIBLE_DEVICES (if set). */
export function visibleGpuIds(count: number, env: NodeJS.ProcessEnv = process.env): string[] {
  const listed = env.CUDA_VISIBLE_DEVICES?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return listed && listed.length >= count ? listed.slice(0, count) : Array.from({ length: count }, (_, i) => String(i));
}
