import type { Backend, DType, GemmParams } from '../backend/backend.ts';
import { connectTape } from './scope.ts';
import { formatShape, sameShape, type Tensor } from './tensor.ts';

/**
 * Where an op may put an input's gradient itself, saving the fill/add/copy kernels autograd would
 * otherwise spend merging a fresh gradient tensor into an existing one. `accumulate: false`
 * means the target's contents are stale (logically zero) and must be overwritten; `true` means
 * add into it. The target never shares storage with the op's gradOutput.
 */
export interface GradSink {
  readonly target: Tensor;
  readonly accumulate: boolean;
  /** The target is a leaf's own gradient: nothing reads it before backward() returns. */
  readonly leaf: boolean;
  /**
   * Only for ops recorded with `addendSinks` (and accumulate true): the gradient so far is in
   * addend, not in target, whose contents are stale; write addend + this op's gradient into
   * target. Offered where the gradient so far shares its storage with a tensor still to be read
   * (e.g. a residual branch's gradient a deferred product holds), so it cannot be added into.
   */
  readonly addend?: Tensor;
}

/** Returned in an input's slot by a backward function that wrote that gradient into its sink. */
export const SUNK: unique symbol = Symbol('gradient written into its sink');

/**
 * Computes the gradients of an op's inputs from the gradient of its output (null: no gradient).
 * Each returned tensor is handed to autograd, which releases it: return distinct tensors, never
 * gradOutput itself (an alias made with `alias()` shares the storage at no cost). Where
 * `sinks[k]` is given, the op may instead write input k's gradient into it and return SUNK.
 */
export type BackwardFn = (gradOutput: Tensor, sinks: readonly (GradSink | null)[]) => readonly (Tensor | null | typeof SUNK)[];

interface TapeEntry {
  readonly output: Tensor;
  readonly inputs: readonly Tensor[];
  readonly backward: BackwardFn;
  /** The backward function honours GradSink.addend. */
  readonly addendSinks: boolean;
}

const tape: TapeEntry[] = [];
let gradEnabled = true;

connectTape(
  (length) => {
    if (tape.length > length) tape.length = length;
  },
  () => tape.length,
);

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording anything on the tape (evaluation, optimiser updates). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/** Records an op on the tape when any input needs a gradient; marks the output accordingly. */
export function record(output: Tensor, inputs: readonly Tensor[], backward: BackwardFn, options: { addendSinks?: boolean } = {}): Tensor {
  output.isLeaf = false;
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) return output;
  output.requiresGrad = true;
  for (const input of inputs) input.consumers++;
  tape.push({ output, inputs, backward, addendSinks: options.addendSinks ?? false });
  return output;
}

/**
 * Reverse-mode pass from `root` (seeded with ones, or `seed`). Gradients of leaf tensors that
 * require them accumulate into `.grad` (allocated once, kept across steps); intermediate
 * gradients are released as soon as they have been propagated. Clears the tape.
 */
export function backward(root: Tensor, seed?: Tensor, accumulate: AccumulateFn = defaultAccumulate): void {
  if (!root.requiresGrad) throw new Error(`backward: ${root.describe()} does not require a gradient`);
  if (deferred) throw new Error('backward: called from inside a backward pass');
  deferred = { products: new Map(), leaves: new Set(), keep: [] };
  castLeaves = new Map();
  let finished = false;
  try {
    propagate(root, seed, accumulate);
    runDeferred();
    finishCastLeaves(castLeaves);
    finished = true;
  } finally {
    for (const t of deferred.keep) t.dispose();
    deferred = null;
    if (!finished) restoreHeldGradients(castLeaves);
    castLeaves = null;
  }
}

/**
 * Leaves with a gradient cast (castGradient) met in the current backward pass, each with the
 * gradient it held from earlier passes (moved aside so that this pass's gradient can be rounded
 * on its own, as a cast before accumulation would) or null; null outside a pass.
 */
let castLeaves: Map<Tensor, Tensor | null> | null = null;

/** Before a leaf's first gradient of this pass: registers a cast leaf, moving aside what it holds. */
function meetLeaf(leaf: Tensor): void {
  if (!castLeaves || castLeaves.has(leaf) || !hasGradientCast(leaf)) return;
  const { tensor, zero } = leaf.gradState();
  const held = tensor && !zero ? tensor : null;
  if (held) leaf.grad = null;
  castLeaves.set(leaf, held);
}

/** Rounds this pass's gradient of every cast leaf it wrote (one call), then adds back what each held. */
function finishCastLeaves(leaves: Map<Tensor, Tensor | null>): void {
  const written = [...leaves.keys()].filter((leaf) => {
    const { tensor, zero } = leaf.gradState();
    return tensor !== null && !zero;
  });
  if (written.length > 0) castLeafGradients(written);
  for (const [leaf, held] of leaves) {
    if (!held) continue;
    const { tensor, zero } = leaf.gradState();
    if (tensor && !zero) {
      addInPlace(tensor, held);
      held.dispose();
    } else {
      tensor?.dispose();
      leaf.grad = held;
    }
  }
  leaves.clear();
}

/** After a failed pass: every cast leaf gets back the gradient it held before the pass. */
function restoreHeldGradients(leaves: Map<Tensor, Tensor | null> | null): void {
  for (const [leaf, held] of leaves ?? []) {
    if (!held) continue;
    leaf.gradState().tensor?.dispose();
    leaf.grad = held;
  }
}

/**
 * Weight-gradient products handed over by ops (deferLeafProduct) during the current backward
 * pass, with the leaves they write and the tensors they read; null outside one.
 */
let deferred: { products: Map<Backend, GemmParams[]>; leaves: Set<Tensor>; keep: Tensor[] } | null = null;

/**
 * Lets a backward function hand over a product that writes only `leaf`'s gradient (a sink with
 * leaf: true), instead of running it now. The products run together when the pass ends, as one
 * backend.gemms call, where a backend may run those of one shape as a single batched launch: at
 * small sizes their number, not their arithmetic, is what costs (eight layers' weight gradients
 * of one shape, one launch instead of eight). `keep` are aliases of the tensors the product reads,
 * disposed once it has run. A later op that would write the same leaf's gradient runs the
 * pending products first, so every gradient is summed in the order of the undeferred pass.
 * Returns false (and keeps nothing) outside a backward pass: run the product then.
 */
export function deferLeafProduct(leaf: Tensor, product: GemmParams, keep: readonly Tensor[]): boolean {
  if (!deferred) return false;
  const list = deferred.products.get(leaf.backend);
  if (list) list.push(product);
  else deferred.products.set(leaf.backend, [product]);
  deferred.leaves.add(leaf);
  deferred.keep.push(...keep);
  return true;
}

function runDeferred(): void {
  if (!deferred || deferred.products.size === 0) return;
  const pending = deferred.products;
  deferred.products = new Map();
  deferred.leaves.clear();
  for (const [backend, products] of pending) backend.gemms(products);
  for (const t of deferred.keep) t.dispose();
  deferred.keep = [];
}

function propagate(root: Tensor, seed: Tensor | undefined, accumulate: AccumulateFn): void {
  const grads = new Map<number, Tensor>();
  grads.set(root.id, seed ?? onesLike(root));
  const sinksAllowed = accumulate === defaultAccumulate;
  for (let i = tape.length - 1; i >= 0; i--) {
    const entry = tape[i];
    const gradOut = grads.get(entry.output.id);
    if (!gradOut) continue;
    grads.delete(entry.output.id);
    if (deferred!.leaves.size > 0 && entry.inputs.some((input) => deferred!.leaves.has(input))) runDeferred();
    for (const input of entry.inputs) if (input.isLeaf && input.requiresGrad) meetLeaf(input);
    const sinks = sinksAllowed ? entry.inputs.map((input, k) => sinkFor(entry, k, input, grads, gradOut)) : NO_SINKS;
    const inputGrads = entry.backward(gradOut, sinks);
    if (gradOut !== seed) gradOut.dispose();
    entry.inputs.forEach((input, k) => {
      const g = inputGrads[k];
      if (!g) return;
      if (g === SUNK) {
        const sink = sinks[k];
        if (!sink) throw new Error(`backward: an op claimed to write the gradient of ${input.describe()} into a sink it was not given`);
        if (input.isLeaf) input.markGradWritten();
        if (sink.addend) {
          sink.addend.dispose();
          grads.set(input.id, sink.target);
        }
        return;
      }
      if (!input.requiresGrad) {
        g.dispose();
        return;
      }
      if (!sameShape(g.shape, input.shape)) {
        throw new Error(`backward: gradient of ${input.describe()} has shape ${formatShape(g.shape)}`);
      }
      if (input.isLeaf) {
        accumulate(input, g);
        g.dispose();
        return;
      }
      const existing = grads.get(input.id);
      if (!existing) grads.set(input.id, g);
      else if (existing.shared.exclusive) {
        addInPlace(existing, g);
        g.dispose();
      } else if (g.shared.exclusive) {
        // existing shares its storage (an alias another gradient, or a deferred product, still
        // reads): adding into it would change what they see. Add into g instead.
        addInPlace(g, existing);
        existing.dispose();
        grads.set(input.id, g);
      } else {
        grads.set(input.id, sumOf(existing, g));
        existing.dispose();
        g.dispose();
      }
    });
  }
  for (const g of grads.values()) g.dispose();
  tape.length = 0;
}

const NO_SINKS: readonly (GradSink | null)[] = [];

/**
 * A sink for input k when writing into it is safe: a leaf's own gradient (which persists), or an
 * intermediate's partial gradient that no other tensor shares. Inputs that appear twice in one op
 * (x·x) get none, since the op would write the same target twice.
 */
function sinkFor(entry: TapeEntry, k: number, input: Tensor, grads: Map<number, Tensor>, gradOut: Tensor): GradSink | null {
  const inputs = entry.inputs;
  if (!input.requiresGrad || inputs.indexOf(input) !== k || inputs.lastIndexOf(input) !== k) return null;
  if (input.isLeaf) {
    let { tensor, zero } = input.gradState();
    if (!tensor) {
      input.grad = createLeafGrad(input);
      input.zeroGrad();
      ({ tensor, zero } = input.gradState());
    }
    if (!tensor || tensor.shared === gradOut.shared) return null;
    return { target: tensor, accumulate: !zero, leaf: true };
  }
  const existing = grads.get(input.id);
  if (!existing || existing.shared === gradOut.shared) return null;
  if (existing.shared.exclusive) return { target: existing, accumulate: true, leaf: false };
  return entry.addendSinks ? { target: emptyLike(existing), accumulate: true, leaf: false, addend: existing } : null;
}

/**
 * The storage type a backward function may give t's gradient when it writes it fresh (no sink):
 * 16 bits where only one op reads t (so the gradient is never summed) and t's producer reads the
 * gradient rounded to that format anyway (Tensor.gradRoundedTo, through gradPassesTo aliases);
 * float32 otherwise. The values are the same either way.
 */
export function gradientDType(t: Tensor): DType {
  for (let at: Tensor | null = t; at; at = at.gradPassesTo) {
    if (at.consumers !== 1 || at.isLeaf) return 'f32';
    if (at.gradRoundedTo) return at.gradRoundedTo;
  }
  return 'f32';
}

export type AccumulateFn = (leaf: Tensor, grad: Tensor) => void;

let onesLike: (t: Tensor) => Tensor = () => {
  throw new Error('autograd not initialised');
};
let addInPlace: (target: Tensor, value: Tensor) => void = () => {
  throw new Error('autograd not initialised');
};
let emptyLike: (t: Tensor) => Tensor = () => {
  throw new Error('autograd not initialised');
};
let sumOf: (a: Tensor, b: Tensor) => Tensor = () => {
  throw new Error('autograd not initialised');
};
let defaultAccumulate: AccumulateFn = () => {
  throw new Error('autograd not initialised');
};
let createLeafGrad: (leaf: Tensor) => Tensor = () => {
  throw new Error('autograd not initialised');
};
let hasGradientCast: (leaf: Tensor) => boolean = () => false;
let castLeafGradients: (leaves: readonly Tensor[]) => void = () => {
  throw new Error('autograd not initialised');
};

/** Wires in the few ops autograd itself needs (set by ops/index.ts, avoiding an import cycle). */
export function connectAutogradOps(ops: {
  onesLike: (t: Tensor) => Tensor;
  addInPlace: (target: Tensor, value: Tensor) => void;
  /** a + b as a new tensor of a's shape. */
  sumOf: (a: Tensor, b: Tensor) => Tensor;
  /** An uninitialised float32 tensor of t's shape. */
  emptyLike: (t: Tensor) => Tensor;
  accumulateGrad: AccumulateFn;
  /** A persistent, uninitialised gradient tensor for a leaf. */
  createLeafGrad: (leaf: Tensor) => Tensor;
  /** Whether each backward pass rounds this leaf's gradient (castGradient). */
  hasGradientCast: (leaf: Tensor) => boolean;
  /** Rounds the written gradients of these cast leaves. */
  castLeafGradients: (leaves: readonly Tensor[]) => void;
}): void {
  hasGradientCast = ops.hasGradientCast;
  castLeafGradients = ops.castLeafGradients;
  createLeafGrad = ops.createLeafGrad;
  onesLike = ops.onesLike;
  addInPlace = ops.addInPlace;
  sumOf = ops.sumOf;
  emptyLike = ops.emptyLike;
  defaultAccumulate = ops.accumulateGrad;
}
