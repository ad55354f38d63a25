import { AsyncLocalStorage } from 'node:async_hooks';
import type { Backend } from '../backend/backend.ts';
import type { RandomContext } from './random.ts';

/**
 * The process-wide settings an op reads implicitly: the default backend and the random context.
 * Normally there is one set for the whole process. `isolated(fn)` gives `fn` and everything it
 * awaits a set of its own, so several training runs can interleave in one process (a sweep's
 * trials sharing one GPU, each on its own stream) without one run's `setDefaultBackend` landing
 * in another's ops.
 */
export interface RunSettings {
  backend: Backend | null;
  random: RandomContext | null;
}

const processSettings: RunSettings = { backend: null, random: null };
const isolatedSettings = new AsyncLocalStorage<RunSettings>();

/** The settings in force here: the innermost `isolated` call's, else the process's. */
export function activeSettings(): RunSettings {
  return isolatedSettings.getStore() ?? processSettings;
}

/** Runs `fn` (sync or async) with settings of its own, starting from copies of the current ones. */
export function isolated<T>(fn: () => T): T {
  const { backend, random } = activeSettings();
  return isolatedSettings.run({ backend, random }, fn);
}
