import { describe, expect, it } from 'vitest';
import { JobPool } from '../../src/train/job-pool.ts';

/** A promise the test settles by hand. */
function gate<T = void>() {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Lets the pool start whatever the test just made possible. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * A pool of one slot held by a blocking task, so that the tasks queued next wait; records the
 * order in which they start.
 */
function blockedPool() {
  const pool = new JobPool(1);
  const blocker = gate();
  const blocked = pool.run(() => blocker.promise);
  const started: string[] = [];
  const task = (name: string) => async () => {
    started.push(name);
    await settle();
    return name;
  };
  return { pool, started, task, release: blocker.open, blocked };
}

describe('JobPool', () => {
  it('runs at most size tasks at once, in arrival order without priorities', async () => {
    const pool = new JobPool(2);
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        pool.run(async () => {
          started.push(i);
          running++;
          peak = Math.max(peak, running);
          await settle();
          running--;
          return i * 10;
        }),
      ),
    );
    expect(results).toEqual([0, 10, 20, 30, 40, 50]);
    expect(started).toEqual([0, 1, 2, 3, 4, 5]);
    expect(peak).toBe(2);
  });

  it('starts the waiting task with the lowest priority number first, first come first served among equals', async () => {
    const { pool, started, task, release, blocked } = blockedPool();
    const done = Promise.all([
      pool.run(task('a2'), 2),
      pool.run(task('b0'), 0),
      pool.run(task('c1'), 1),
      pool.run(task('d0'), 0),
      pool.run(task('e2'), 2),
      pool.run(task('f-default')), // priority 0
      pool.run(task('g-urgent'), -1),
    ]);
    await settle();
    expect(started).toEqual([]);
    release();
    await blocked;
    expect(await done).toEqual(['a2', 'b0', 'c1', 'd0', 'e2', 'f-default', 'g-urgent']);
    expect(started).toEqual(['g-urgent', 'b0', 'd0', 'f-default', 'c1', 'a2', 'e2']);
  });

  it('lets a waiting task be withdrawn: it never starts and run rejects with an AbortError', async () => {
    const { pool, started, task, release } = blockedPool();
    const withdrawn = new AbortController();
    const first = pool.run(task('first'), 1);
    const dropped = pool.run(task('dropped'), 0, withdrawn.signal);
    const last = pool.run(task('last'), 2);
    withdrawn.abort();
    await expect(dropped).rejects.toMatchObject({ name: 'AbortError' });
    release();
    expect([await first, await last]).toEqual(['first', 'last']);
    expect(started).toEqual(['first', 'last']);
  });

  it('does not start a task whose signal has already aborted', async () => {
    const pool = new JobPool(1);
    let ran = false;
    const signal = AbortSignal.abort();
    await expect(
      pool.run(async () => {
        ran = true;
      }, 0, signal),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(ran).toBe(false);
    expect(await pool.run(async () => 'free slot')).toBe('free slot');
  });

  it('leaves a started task alone when its signal aborts', async () => {
    const pool = new JobPool(1);
    const controller = new AbortController();
    const finish = gate<string>();
    const running = pool.run(() => finish.promise, 0, controller.signal);
    controller.abort();
    finish.open('finished anyway');
    expect(await running).toBe('finished anyway');
  });

  it('hands a finished task slot to the next waiting task, not to a run called before that one resumes', async () => {
    const pool = new JobPool(1);
    let running = 0;
    let peak = 0;
    const counted = (work: () => Promise<unknown>) => async () => {
      running++;
      peak = Math.max(peak, running);
      await work();
      running--;
    };
    const first = gate();
    const all = [
      // returns the gate itself, so that the pool's clean-up runs in the very job after open()
      pool.run(() => {
        running++;
        return first.promise;
      }),
      pool.run(counted(settle)),
    ];
    await settle();
    running--;
    first.open();
    // queued after the pool's clean-up but before the waiting task resumes
    queueMicrotask(() => all.push(pool.run(counted(settle))));
    await settle();
    await Promise.all(all);
    expect(all).toHaveLength(3);
    expect(peak).toBe(1);
  });

  it('frees the slot of a task that throws', async () => {
    const pool = new JobPool(1);
    await expect(pool.run(() => Promise.reject(new Error('task failed')))).rejects.toThrow('task failed');
    expect(await pool.run(async () => 'next')).toBe('next');
  });
});
