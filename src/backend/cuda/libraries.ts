/**
 * Where the CUDA shared libraries live. The driver (libcuda) comes with the GPU driver install; the
 * runtime-side libraries (NVRTC, cuBLAS, cuBLASLt) come from a CUDA toolkit or from pip's
 * `nvidia-*` wheels. Every candidate path is recorded so `repro doctor` can say what was looked at.
 */
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export type CudaLibraryName = 'cuda' | 'nvrtc' | 'cublasLt' | 'cublas';

/** Sonames tried in order: unversioned first (a toolkit's dev symlink), then the majors we know. */
const SONAMES: Record<CudaLibraryName, readonly string[]> = {
  cuda: ['libcuda.so.1', 'libcuda.so'],
  nvrtc: ['libnvrtc.so', 'libnvrtc.so.13', 'libnvrtc.so.12'],
  cublasLt: ['libcublasLt.so', 'libcublasLt.so.13', 'libcublasLt.so.12'],
  cublas: ['libcublas.so', 'libcublas.so.13', 'libcublas.so.12'],
};

/** The environment variable that names extra library folders (colon-separated), searched first. */
export const LIBRARY_DIR_ENV = 'REPRO_CUDA_LIB_DIR';

export interface LibraryCandidate {
  /** A full path, or a bare soname for the dynamic loader's own search (LD_LIBRARY_PATH, ld.so.cache). */
  readonly path: string;
  readonly source: string;
}

/** Folders that hold the driver library. The toolkit's `stubs` folder is never searched: its
 * libcuda only fails every call. */
function driverDirs(): string[] {
  return ['/usr/local/nvidia/lib64', '/usr/local/nvidia/lib', '/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib/wsl/lib'];
}

function toolkitDirs(): string[] {
  const dirs: string[] = [];
  const cudaHome = process.env.CUDA_HOME ?? process.env.CUDA_PATH;
  if (cudaHome) dirs.push(join(cudaHome, 'lib64'), join(cudaHome, 'lib'));
  dirs.push('/usr/local/cuda/lib64', '/usr/local/cuda/targets/x86_64-linux/lib');
  for (const dir of listDir('/usr/local')) if (/^cuda-\d+(\.\d+)?$/.test(dir)) dirs.push(join('/usr/local', dir, 'lib64'));
  dirs.push('/usr/lib/x86_64-linux-gnu', '/usr/lib64');
  return dirs;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort().reverse();
  } catch {
    return [];
  }
}

/** site-packages folders of the Pythons we can guess without running one. */
function sitePackagesDirs(): string[] {
  const roots = new Set<string>();
  const venv = process.env.VIRTUAL_ENV;
  if (venv) roots.add(join(venv, 'lib'));
  const conda = process.env.CONDA_PREFIX;
  if (conda) roots.add(join(conda, 'lib'));
  roots.add(join(homedir(), '.local', 'lib'));
  roots.add('/usr/local/lib');
  roots.add('/usr/lib');
  for (const opt of listDir('/opt')) {
    roots.add(join('/opt', opt, '.venv', 'lib'));
    roots.add(join('/opt', opt, 'lib'));
  }
  const dirs: string[] = [];
  for (const root of roots) {
    for (const python of listDir(root)) {
      if (!python.startsWith('python3')) continue;
      for (const kind of ['site-packages', 'dist-packages']) {
        const dir = join(root, python, kind);
        if (existsSync(join(dir, 'nvidia'))) dirs.push(dir);
      }
    }
  }
  for (const extra of (process.env.PYTHONPATH ?? '').split(':')) if (extra && existsSync(join(extra, 'nvidia'))) dirs.push(extra);
  return dirs;
}

/** The pip wheels put each library in site-packages/nvidia/<package>/lib (cu13 wheels: nvidia/cu13/lib). */
function pipLibraryDirs(): string[] {
  const dirs: string[] = [];
  for (const site of sitePackagesDirs()) {
    for (const pkg of listDir(join(site, 'nvidia'))) {
      const lib = join(site, 'nvidia', pkg, 'lib');
      if (existsSync(lib)) dirs.push(lib);
    }
  }
  return dirs;
}

function envDirs(): string[] {
  return (process.env[LIBRARY_DIR_ENV] ?? '').split(':').filter((d) => d.length > 0);
}

/** Every place a library is looked for, in order of preference. */
export function libraryCandidates(name: CudaLibraryName): LibraryCandidate[] {
  const candidates: LibraryCandidate[] = [];
  const seen = new Set<string>();
  const add = (dir: string, source: string): void => {
    for (const soname of SONAMES[name]) {
      const path = join(dir, soname);
      if (!seen.has(path) && existsSync(path)) {
        seen.add(path);
        candidates.push({ path, source });
      }
    }
  };
  for (const dir of envDirs()) add(dir, LIBRARY_DIR_ENV);
  if (name === 'cuda') for (const dir of driverDirs()) add(dir, 'driver folder');
  else {
    for (const dir of toolkitDirs()) add(dir, 'CUDA toolkit');
    for (const dir of pipLibraryDirs()) add(dir, 'pip nvidia wheel');
  }
  for (const soname of SONAMES[name]) candidates.push({ path: soname, source: 'dynamic loader search path' });
  return candidates;
}

/** The folders searched for a library, for messages ("looked in …"). */
export function searchedFolders(name: CudaLibraryName): string[] {
  const dirs = [...envDirs(), ...(name === 'cuda' ? driverDirs() : [...toolkitDirs(), ...pipLibraryDirs()])];
  return [...new Set(dirs), 'the dynamic loader path'];
}

export function sonamesOf(name: CudaLibraryName): readonly string[] {
  return SONAMES[name];
}
