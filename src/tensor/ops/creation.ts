import type { Backend, DType } from '../../backend/backend.ts';
import { defaultBackend } from '../device.ts';
import { SharedStorage, Tensor, shapeSize } from '../tensor.ts';

/** A tensor with uninitialised contents (the caller writes every element). */
export function empty(shape: readonly number[], dtype: DType = 'f32', backend: Backend = defaultBackend()): Tensor {
  const size = shapeSize(shape);
  return new Tensor([...shape], dtype, new SharedStorage(backend, backend.alloc(size, dtype)));
}

export function full(shape: readonly number[], value: number, dtype: DType = 'f32', backend: Backend = defaultBackend()): Tensor {
  const t = empty(shape, dtype, backend);
  backend.fill(t.storage, 0, t.size, value);
  return t;
}

export function zeros(shape: readonly number[], dtype: DType = 'f32', backend: Backend = defaultBackend()): Tensor {
  return full(shape, 0, dtype, backend);
}

export function ones(shape: readonly number[], backend: Backend = defaultBackend()): Tensor {
  return full(shape, 1, 'f32', backend);
}

export function scalar(value: number, backend: Backend = defaultBackend()): Tensor {
  return full([], value, 'f32', backend);
}

export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, t.dtype, t.backend);
}

export function onesLike(t: Tensor): Tensor {
  return full(t.shape, 1, t.dtype, t.backend);
}

/** Uploads host values. Int32Array (or dtype 'i32') makes an id tensor. */
export function tensor(
  data: Float32Array | Int32Array | readonly number[],
  shape: readonly number[] = [data.length],
  options: { dtype?: DType; backend?: Backend } = {},
): Tensor {
  const dtype = options.dtype ?? (data instanceof Int32Array ? 'i32' : 'f32');
  const backend = options.backend ?? defaultBackend();
  if (shapeSize(shape) !== data.length) {
    throw new Error(`tensor: ${data.length} values do not fill shape [${shape.join(', ')}]`);
  }
  const t = empty(shape, dtype, backend);
  const host = dtype !== 'i32' ? (data instanceof Float32Array ? data : Float32Array.from(data)) : data instanceof Int32Array ? data : Int32Array.from(data);
  backend.write(t.storage, host);
  return t;
}

/** A second tensor over the same storage (no copy), e.g. for reshape or a returned gradient. */
export function alias(t: Tensor, shape: readonly number[] = t.shape): Tensor {
  if (shapeSize(shape) !== t.size) throw new Error(`alias: cannot view ${t.describe()} as [${shape.join(', ')}]`);
  t.shared.retain();
  return new Tensor([...shape], t.dtype, t.shared);
}

/** Samples from the Philox stream (seed, stream) on the tensor's backend. */
export function randomNormal(
  shape: readonly number[],
  seed: number,
  stream: number,
  mean = 0,
  std = 1,
  backend: Backend = defaultBackend(),
): Tensor {
  const t = empty(shape, 'f32', backend);
  backend.random(t.storage, t.size, 'normal', seed, stream, null, mean, std);
  return t;
}

export function randomUniform(
  shape: readonly number[],
  seed: number,
  stream: number,
  low = 0,
  high = 1,
  backend: Backend = defaultBackend(),
): Tensor {
  const t = empty(shape, 'f32', backend);
  backend.random(t.storage, t.size, 'uniform', seed, stream, null, low, high);
  return t;
}
