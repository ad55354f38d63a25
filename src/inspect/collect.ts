import type { FloatFormat } from '../formats/format.ts';
import type { CharLM } from '../models/charlm/index.ts';
import type { TokenBatch } from '../models/types.ts';
import { probeTap, type ProbeSink, type TensorRole } from '../nn/probe.ts';
import * as T from '../tensor/index.ts';
import { tensorStats, type TensorReport } from './stats.ts';

export interface ModelInspection {
  /** the batch's loss (mean nats per scored character) */
  readonly loss: number;
  /** activations in forward order, each followed by its gradient; then every parameter
   * followed by its gradient */
  readonly tensors: readonly TensorReport[];
}

/**
 * Runs one forward and backward pass of `model` on `batch` with a probe on every named
 * activation, and returns the statistics of every activation, activation gradient, weight and
 * weight gradient. Leaves the parameters' gradients zeroed.
 */
export function inspectModel(model: CharLM, batch: TokenBatch, options: { formats: readonly FloatFormat[]; lossScale: number }): ModelInspection {
  const byName = new Map<string, Partial<Record<TensorRole, TensorReport>>>();
  const sink: ProbeSink = {
    record(name, role, values, shape) {
      const entry = byName.get(name) ?? {};
      if (entry[role]) throw new Error(`inspect: tensor ${name} was recorded twice`);
      entry[role] = { name, role, shape: [...shape], ...tensorStats(values, options.formats) };
      byName.set(name, entry);
    },
  };
  const loss = T.tidy(() => {
    const out = model.loss(batch, { training: true, lossScale: options.lossScale, tap: probeTap(sink) });
    T.backward(out.loss);
    return out.loss.item();
  });
  const tensors: TensorReport[] = [];
  for (const entry of byName.values()) {
    if (entry.activation) tensors.push(entry.activation);
    if (entry.gradient) tensors.push(entry.gradient);
  }
  for (const p of model.parameters) {
    tensors.push({ name: p.name, role: 'weight', shape: [...p.tensor.shape], ...tensorStats(p.tensor.toFloat32Array(), options.formats) });
    const grad = p.tensor.grad;
    if (grad) {
      tensors.push({ name: p.name, role: 'weight-gradient', shape: [...grad.shape], ...tensorStats(grad.toFloat32Array(), options.formats) });
      grad.backend.fill(grad.storage, 0, grad.size, 0);
    }
  }
  return { loss, tensors };
}
