import type { Backend } from '../backend/backend.ts';
import { CpuBackend } from '../backend/cpu/index.ts';
import { activeSettings } from './run-context.ts';

let cpu: CpuBackend | null = null;

export function cpuBackend(): CpuBackend {
  return (cpu ??= new CpuBackend());
}

/** The backend new tensors are created on unless one is named (see run-context.ts for scope). */
export function defaultBackend(): Backend {
  const settings = activeSettings();
  return (settings.backend ??= cpuBackend());
}

export function setDefaultBackend(backend: Backend): void {
  activeSettings().backend = backend;
}

/** Runs fn with `backend` as the default, restoring the previous one afterwards. */
export function withBackend<T>(backend: Backend, fn: () => T): T {
  const settings = activeSettings();
  const previous = settings.backend;
  settings.backend = backend;
  try {
    return fn();
  } finally {
    settings.backend = previous;
  }
}
