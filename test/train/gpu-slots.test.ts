import { describe, expect, it } from 'vitest';
import { GpuSlots, visibleGpuIds } from '../../src/train/gpu-slots.ts';

describe('spreading sweep workers over GPUs', () => {
  it('gives each worker the least-loaded GPU and frees it when the worker ends', () => {
    const slots = new GpuSlots(2);
    const a = slots.acquire();
    const b = slots.acquire();
    const c = slots.acquire();
    expect([a.env.CUDA_VISIBLE_DEVICES, b.env.CUDA_VISIBLE_DEVICES, c.env.CUDA_VISIBLE_DEVICES]).toEqual(['0', '1', '0']);
    b.release();
    b.release();
    expect(slots.acquire().env.CUDA_VISIBLE_DEVICES).toBe('1');
  });

  it('maps onto the GPUs the parent itself may use', () => {
    expect(visibleGpuIds(2, { CUDA_VISIBLE_DEVICES: '3,5' })).toEqual(['3', '5']);
    expect(visibleGpuIds(2, {})).toEqual(['0', '1']);
    const slots = new GpuSlots(2, ['3', '5']);
    expect(slots.acquire().env.CUDA_VISIBLE_DEVICES).toBe('3');
  });

  it('with one GPU or none, workers inherit the environment', () => {
    expect(new GpuSlots(1).acquire().env).toBe(process.env);
    expect(new GpuSlots(0).acquire().env).toBe(process.env);
  });
});
