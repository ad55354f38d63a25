import koffi from 'koffi';
import { libraryCandidates, searchedFolders, type CudaLibraryName } from './libraries.ts';

export type LibraryHandle = ReturnType<typeof koffi.load>;

export interface LoadedLibrary {
  readonly name: CudaLibraryName;
  readonly handle: LibraryHandle;
  /** The path (or soname) that loaded. */
  readonly path: string;
  readonly source: string;
}

export interface LibraryLoadFailure {
  readonly name: CudaLibraryName;
  /** Why nothing loaded, naming what was tried. */
  readonly reason: string;
}

const loaded = new Map<CudaLibraryName, LoadedLibrary | LibraryLoadFailure>();

/**
 * Loads the first candidate that opens and exports `probeSymbol` (a library of the right name but
 * the wrong kind, e.g. a stub, fails the probe). Cached: each library is looked for once.
 */
export function loadCudaLibrary(name: CudaLibraryName, probeSymbol: string): LoadedLibrary | LibraryLoadFailure {
  const cached = loaded.get(name);
  if (cached) return cached;
  const errors: string[] = [];
  let result: LoadedLibrary | LibraryLoadFailure | null = null;
  for (const candidate of libraryCandidates(name)) {
    let handle: LibraryHandle;
    try {
      handle = koffi.load(candidate.path);
    } catch (err) {
      if (candidate.path.includes('/')) errors.push(`${candidate.path}: ${firstLine(err)}`);
      continue;
    }
    try {
      handle.func(`int ${probeSymbol}()`);
    } catch (err) {
      errors.push(`${candidate.path}: no symbol ${probeSymbol} (${firstLine(err)})`);
      continue;
    }
    result = { name, handle, path: candidate.path, source: candidate.source };
    break;
  }
  if (!result) {
    const tried = errors.length > 0 ? `; ${errors.join('; ')}` : '';
    result = { name, reason: `lib${name} not found (looked in ${searchedFolders(name).join(', ')})${tried}` };
  }
  loaded.set(name, result);
  return result;
}

export function isLoaded(result: LoadedLibrary | LibraryLoadFailure): result is LoadedLibrary {
  return 'handle' in result;
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}
