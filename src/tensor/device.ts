import type { Backend } from '../backend/backend.ts';
import { CpuBackend } from '../backend/cpu/index.ts';

let cpu: CpuBackend | null = null;
let current: Backend | null = null;

export function cpuBackend(): CpuBackend {
  return (cpu ??= new CpuBackend());
}

/** The backend new tensors are created on unless one is named. */
export function defaultBackend(): Backend {
  return (current ??= cpuBackend());
}

export function setDefaultBackend(backend: Backend): void {
  current = backend;
}

/** Runs fn with `backend` as the default, restoring the previous one afterwards. */
export function withBackend<T>(backend: Backend, fn: () => T): T {
  const previous = current;
  current = backend;
  try {
    return fn();
  } finally {
    current = previous;
  }
}
