/** The caching allocator's bookkeeping, on a fake device (runs without a GPU). */
import { describe, expect, it } from 'vitest';
import { CachingAllocator, CaptureAllocationError, sizeClass, type DeviceMemory } from '../../src/backend/cuda/allocator.ts';

class FakeDevice implements DeviceMemory {
  next = 0x10000;
  live = new Map<number, number>();
  allocations = 0;
  frees = 0;
  syncs = 0;
  constructor(private capacity = Infinity) {}
  allocate(bytes: number): number | null {
    const used = [...this.live.values()].reduce((a, b) => a + b, 0);
    if (used + bytes > this.capacity) return null;
    this.allocations++;
    const address = this.next;
    this.next += bytes;
    this.live.set(address, bytes);
    return address;
  }
  free(address: number): void {
    this.frees++;
    this.live.delete(address);
  }
  synchronize(): void {
    this.syncs++;
  }
}

describe('size classes', () => {
  it('round small sizes to 512 bytes and large ones to quarter powers of two', () => {
    expect(sizeClass(1)).toBe(512);
    expect(sizeClass(512)).toBe(512);
    expect(sizeClass(513)).toBe(1024);
    expect(sizeClass(1 << 20)).toBe(1 << 20);
    expect(sizeClass((1 << 20) + 1)).toBe((1 << 20) + (1 << 18));
    expect(sizeClass(3 * (1 << 24) + 5)).toBe(3.5 * (1 << 24));
    for (const bytes of [1, 700, 5000, 1e6, 3e6, 1e9]) {
      const c = sizeClass(bytes);
      expect(c).toBeGreaterThanOrEqual(bytes);
      expect(c).toBeLessThanOrEqual(Math.max(512, bytes * 1.25 + 512));
    }
  });
});

describe('CachingAllocator', () => {
  it('hands freed blocks out again instead of allocating', () => {
    const device = new FakeDevice();
    const allocator = new CachingAllocator(device);
    const a = allocator.allocate(1000);
    const b = allocator.allocate(5000);
    allocator.release(a);
    allocator.release(b);
    const c = allocator.allocate(900);
    const d = allocator.allocate(4700);
    expect(c.address).toBe(a.address);
    expect(d.address).toBe(b.address);
    expect(device.allocations).toBe(2);
    expect(allocator.deviceAllocations).toBe(2);
    expect(allocator.reserved).toBe(1024 + 5120);
  });

  it('empties its cache and retries when the device is out of memory', () => {
    const device = new FakeDevice(4096);
    const allocator = new CachingAllocator(device);
    allocator.release(allocator.allocate(2048));
    const big = allocator.allocate(3000);
    expect(device.frees).toBe(1);
    expect(device.syncs).toBe(1);
    expect(allocator.reserved).toBe(3072);
    expect(() => allocator.allocate(3000)).toThrow(/out of memory/);
    allocator.release(big);
  });

  it('during capture: serves only cached blocks, keeps blocks freed inside for the graph', () => {
    const device = new FakeDevice();
    const allocator = new CachingAllocator(device);
    const warm = allocator.allocate(1000);
    allocator.release(warm);
    allocator.beginCapture();
    const inside = allocator.allocate(1000);
    expect(inside.address).toBe(warm.address);
    expect(() => allocator.allocate(1 << 22)).toThrow(CaptureAllocationError);
    allocator.release(inside);
    // Freed earlier in the same capture: reusable inside it (stream order holds).
    const again = allocator.allocate(800);
    expect(again.address).toBe(warm.address);
    allocator.release(again);
    const owned = allocator.endCapture();
    expect(owned.map((b) => b.address)).toEqual([warm.address]);
    // Not handed out while the graph owns it.
    expect(allocator.allocate(1000).address).not.toBe(warm.address);
    allocator.returnBlocks(owned);
    expect(allocator.allocate(1000).address).toBe(warm.address);
    expect(() => {
      allocator.beginCapture();
      allocator.beginCapture();
    }).toThrow(/already/);
  });
});
