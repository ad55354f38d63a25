import * as nn from '../../src/nn/index.ts';
import * as T from '../../src/tensor/index.ts';

let nextStream = 1;
/** A fresh N(0, 1) tensor (each call draws a new Philox stream). */
export function gaussian(shape: number[], requiresGrad = true): T.Tensor {
  const t = T.randomNormal(shape, 1234, nextStream++);
  t.requiresGrad = requiresGrad;
  return t;
}

/** Rows identical across the batch (DEMO's batch-correlated test inputs, §8.13): [rows, width]. */
export function correlated(rows: number, width: number, requiresGrad = true): T.Tensor {
  const row = T.randomNormal([1, width], 1234, nextStream++);
  const t = T.tensor(T.broadcastTo(row, [rows, width]).toFloat32Array(), [rows, width]);
  t.requiresGrad = requiresGrad;
  return t;
}

export function std(t: T.Tensor | Float32Array): number {
  const v = t instanceof Float32Array ? t : t.toFloat32Array();
  let mean = 0;
  for (const x of v) mean += x;
  mean /= v.length;
  let sq = 0;
  for (const x of v) sq += (x - mean) ** 2;
  return Math.sqrt(sq / v.length);
}

export interface UnitRun {
  /** std of each output */
  readonly outputs: number[];
  /** std of the gradient of each input that requires one */
  readonly grads: number[];
  /** std of the value and the gradient of every tapped tensor */
  readonly taps: Map<string, { value: number; grad: number }>;
}

/**
 * Runs `build` on `inputs`, seeds every output with an upstream gradient (N(0,1) unless given)
 * and returns output and input-gradient stds. `build` may call `tap(name, x)` to record
 * intermediate tensors and their gradients.
 */
export function unitRun(
  inputs: T.Tensor[],
  build: (tap: nn.Tap) => T.Tensor[],
  upstream?: (out: T.Tensor, index: number) => T.Tensor,
): UnitRun {
  const taps = new Map<string, { value: number; grad: number }>();
  const sink: nn.ProbeSink = {
    record(name, role, values) {
      const entry = taps.get(name) ?? { value: NaN, grad: NaN };
      if (role === 'activation') entry.value = std(values);
      else entry.grad = std(values);
      taps.set(name, entry);
    },
  };
  return T.tidy(() => {
    const outs = build(nn.probeTap(sink));
    let total: T.Tensor | null = null;
    outs.forEach((o, i) => {
      const g = upstream ? upstream(o, i) : gaussian([...o.shape], false);
      const term = T.sum(T.mul(o, g));
      total = total ? T.add(total, term) : term;
    });
    T.backward(total!);
    const result = {
      outputs: outs.map((o) => std(o)),
      grads: inputs.filter((x) => x.requiresGrad).map((x) => std(x.grad!)),
      taps,
    };
    for (const x of inputs) {
      x.grad?.dispose();
      x.grad = null;
    }
    return result;
  });
}

/** |value − 1| ≤ tolerance, with a message naming what was measured. */
export function expectUnit(what: string, value: number, tolerance = 0.1): void {
  if (!(Math.abs(value - 1) <= tolerance)) throw new Error(`${what}: std ${value.toFixed(4)} is not within ${tolerance} of 1`);
}
