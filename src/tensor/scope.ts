import type { Tensor } from './tensor.ts';

/**
 * Explicit lifetimes (design note 3): tensors created while a scope is open belong to it and are
 * released when it closes, unless kept or returned. Parameters and optimiser state are created
 * outside any scope and live until disposed.
 */
interface Scope {
  tensors: Tensor[];
  tapeLength: number;
}

const stack: Scope[] = [];
const kept = new WeakSet<Tensor>();
let tapeTruncate: ((length: number) => void) | null = null;
let tapeLengthNow: () => number = () => 0;

/** Lets the autograd tape drop the entries recorded inside a scope when it closes. */
export function connectTape(truncate: (length: number) => void, length: () => number): void {
  tapeTruncate = truncate;
  tapeLengthNow = length;
}

export function registerInScope(tensor: Tensor): void {
  const top = stack[stack.length - 1];
  if (top) top.tensors.push(tensor);
}

/** Marks a tensor to outlive the scope it was created in (it then belongs to the parent scope). */
export function keep<T extends Tensor>(tensor: T): T {
  kept.add(tensor);
  return tensor;
}

function collect(value: unknown, into: Set<Tensor>, depth = 0): void {
  if (value === null || value === undefined || depth > 4) return;
  if (typeof value !== 'object') return;
  if ('shared' in value && 'shape' in value && 'dtype' in value) {
    into.add(value as Tensor);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, into, depth + 1);
  else for (const v of Object.values(value as Record<string, unknown>)) collect(v, into, depth + 1);
}

/** Runs fn in a new scope; tensors it returns (also inside arrays/objects) move to the parent scope. */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = { tensors: [], tapeLength: tapeLengthNow() };
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    stack.pop();
    for (const t of scope.tensors) t.dispose();
    throw err;
  }
  stack.pop();
  closeScope(scope, result);
  return result;
}

function closeScope(scope: Scope, result: unknown): void {
  const survivors = new Set<Tensor>();
  collect(result, survivors);
  const parent = stack[stack.length - 1];
  for (const t of scope.tensors) {
    if (survivors.has(t) || kept.has(t)) {
      kept.delete(t);
      if (parent) parent.tensors.push(t);
    } else t.dispose();
  }
  if (tapeTruncate && survivors.size === 0) tapeTruncate(scope.tapeLength);
}

/** Runs fn outside every scope: what it creates lives until disposed explicitly (parameters,
 * gradients, optimiser state). */
export function persistent<T>(fn: () => T): T {
  const saved = stack.splice(0, stack.length);
  try {
    return fn();
  } finally {
    stack.push(...saved);
  }
}
