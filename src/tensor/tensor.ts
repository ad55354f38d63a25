import { contiguousStrides } from '../backend/strides.ts';
import type { Backend, DType, Format16, Storage, StridedView } from '../backend/backend.ts';
import { registerInScope } from './scope.ts';

/** Storage shared by a tensor and its reshaped aliases; released when the last holder lets go. */
export class SharedStorage {
  private refs = 1;
  constructor(
    readonly backend: Backend,
    readonly storage: Storage,
  ) {}
  /** Whether exactly one tensor holds this storage (so writing into it affects no one else). */
  get exclusive(): boolean {
    return this.refs === 1;
  }
  retain(): void {
    this.refs++;
  }
  release(): void {
    if (--this.refs === 0) this.backend.release(this.storage);
  }
}

let nextTensorId = 1;

/**
 * A dense, contiguous, row-major array on one backend. Values are float32 (int32 for ids); lower
 * precisions are simulated by quantise ops. Tensors made inside a scope (see scope.ts) are released
 * when it ends unless kept or returned.
 */
export class Tensor {
  readonly id = nextTensorId++;
  readonly size: number;
  private gradTensor: Tensor | null = null;
  /** The gradient is logically zero but its storage still holds the last step's values. */
  private gradZeroPending = false;
  requiresGrad = false;
  /** True for tensors created by the user (parameters, inputs) rather than by an op. */
  isLeaf = true;
  /**
   * Set by the op that produced this tensor when its backward reads the gradient arriving here
   * only rounded to this format (nearest-even), or passes it unchanged to a tensor that has such a
   * producer (gradPassesTo): the gradient may then be stored in 16 bits (autograd.gradientDType).
   */
  gradRoundedTo: Format16 | null = null;
  gradPassesTo: Tensor | null = null;
  /** Recorded ops that read this tensor (autograd.record counts them): one means its gradient is never a sum. */
  consumers = 0;
  name = '';
  private disposed = false;

  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly shared: SharedStorage,
  ) {
    this.size = shapeSize(shape);
    registerInScope(this);
  }

  /**
   * Gradient accumulated by backward(); parameters keep theirs across steps. A gradient cleared
   * with zeroGrad() is zero-filled here on first read, unless backward() has written it first.
   */
  get grad(): Tensor | null {
    if (this.gradZeroPending) {
      this.gradZeroPending = false;
      const g = this.gradTensor!;
      g.backend.fill(g.storage, 0, g.size, 0);
    }
    return this.gradTensor;
  }

  set grad(value: Tensor | null) {
    this.gradTensor = value;
    this.gradZeroPending = false;
  }

  /**
   * Clears the gradient without a kernel: backward() then writes the first contribution over the
   * stale values instead of filling zeros and adding (two launches per parameter saved).
   */
  zeroGrad(): void {
    if (this.gradTensor) this.gradZeroPending = true;
  }

  /** For autograd: the gradient tensor as stored, and whether its contents count as zero. */
  gradState(): { readonly tensor: Tensor | null; readonly zero: boolean } {
    return { tensor: this.gradTensor, zero: this.gradZeroPending };
  }

  /** For autograd: the stored gradient now holds real values. */
  markGradWritten(): void {
    this.gradZeroPending = false;
  }

  get backend(): Backend {
    return this.shared.backend;
  }

  get storage(): Storage {
    if (this.disposed) throw new Error(`tensor ${this.describe()} used after it was released`);
    return this.shared.storage;
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** The whole tensor as a contiguous strided view (for kernels that take views). */
  view(): StridedView {
    return { storage: this.storage, offset: 0, strides: contiguousStrides(this.shape) };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.shared.release();
  }

  /** Copies the values to the host: a synchronising call, kept out of the training step. */
  toArray(): Float32Array | Int32Array {
    return this.backend.read(this.storage);
  }

  toFloat32Array(): Float32Array {
    const data = this.toArray();
    return data instanceof Float32Array ? data : Float32Array.from(data);
  }

  item(): number {
    if (this.size !== 1) throw new Error(`item() needs a one-element tensor, got shape [${this.shape.join(', ')}]`);
    return this.toArray()[0];
  }

  describe(): string {
    return `${this.name || `#${this.id}`}[${this.shape.join(', ')}]`;
  }
}

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`invalid shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}


export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export { contiguousStrides };
