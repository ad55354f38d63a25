import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { ReproError } from '../errors.ts';
import { EXPERIMENTS_DIR, SWEEPS_DIR, displayPath } from './paths.ts';
import { readYamlMapping } from './yaml-file.ts';

export type CatalogueKind = 'experiment' | 'sweep';

export interface CatalogueEntry {
  /** the shortest name that finds the file: its base name, or its folder-qualified name if that is ambiguous */
  name: string;
  path: string;
  description: string;
}

function isYaml(file: string): boolean {
  return file.endsWith('.yaml') || file.endsWith('.yml');
}

function stripYaml(file: string): string {
  return file.replace(/\.ya?ml$/, '');
}

function yamlFilesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) return yamlFilesUnder(full);
    return entry.isFile() && isYaml(entry.name) ? [full] : [];
  });
}

/** Shipped files of one kind: sweeps live under experiments/sweeps/, experiments everywhere else. */
export function catalogueFiles(kind: CatalogueKind): string[] {
  const files =
    kind === 'sweep'
      ? yamlFilesUnder(SWEEPS_DIR)
      : yamlFilesUnder(EXPERIMENTS_DIR).filter((file) => !file.startsWith(SWEEPS_DIR + sep));
  return files.sort((a, b) => qualifiedName(a).localeCompare(qualifiedName(b)));
}

function qualifiedName(file: string): string {
  return stripYaml(relative(EXPERIMENTS_DIR, file)).split(sep).join('/');
}

function matchesName(file: string, name: string): boolean {
  const qualified = qualifiedName(file);
  return qualified === name || qualified.endsWith(`/${name}`);
}

/**
 * Finds an experiment or sweep file. A value ending in .yaml/.yml is a path (relative to
 * `relativeTo`, else the working directory); anything else is a name such as "charlm-quick" or
 * "charlm/base", searched for under experiments/ (a file in `relativeTo` wins a tie).
 */
export function resolveCatalogueFile(
  nameOrPath: string,
  kind: CatalogueKind,
  options: { relativeTo?: string; context?: string } = {},
): string {
  const prefix = options.context ? `${options.context}: ` : '';
  if (isYaml(nameOrPath)) {
    const file = resolve(options.relativeTo ?? process.cwd(), nameOrPath);
    if (!existsSync(file)) throw new ReproError(`${prefix}file not found: ${displayPath(file)}`);
    return file;
  }
  const candidates = catalogueFiles(kind).filter((file) => matchesName(file, nameOrPath));
  if (candidates.length === 1) return candidates[0] as string;
  if (candidates.length === 0)
    throw new ReproError(`${prefix}unknown ${kind} "${nameOrPath}" (repro list shows them; a path must end in .yaml)`);
  const nearby = options.relativeTo ? candidates.filter((file) => dirname(file) === resolve(options.relativeTo as string)) : [];
  if (nearby.length === 1) return nearby[0] as string;
  throw new ReproError(
    `${prefix}${kind} name "${nameOrPath}" is ambiguous: ${candidates.map(qualifiedName).join(', ')}`,
  );
}

/**
 * Whether a name or path means an experiment or a sweep: sweeps live under experiments/sweeps/
 * (or, for a file elsewhere, have an `lr_search` section).
 */
export function catalogueKindOf(nameOrPath: string): CatalogueKind {
  if (isYaml(nameOrPath)) {
    const file = resolve(nameOrPath);
    if (file.startsWith(SWEEPS_DIR + sep)) return 'sweep';
    return existsSync(file) && 'lr_search' in readYamlMapping(file) ? 'sweep' : 'experiment';
  }
  const isExperiment = catalogueFiles('experiment').some((file) => matchesName(file, nameOrPath));
  const isSweep = catalogueFiles('sweep').some((file) => matchesName(file, nameOrPath));
  return isSweep && !isExperiment ? 'sweep' : 'experiment';
}

function describe(file: string): string {
  try {
    const description = readYamlMapping(file)['description'];
    return typeof description === 'string' ? description : '';
  } catch (err) {
    if (err instanceof ReproError) return `(unreadable: ${err.message})`;
    throw err;
  }
}

function catalogue(kind: CatalogueKind): CatalogueEntry[] {
  const files = catalogueFiles(kind);
  return files.map((file) => {
    const short = stripYaml(basename(file));
    const unique = files.filter((other) => stripYaml(basename(other)) === short).length === 1;
    return { name: unique ? short : qualifiedName(file), path: file, description: describe(file) };
  });
}

/** Every shipped experiment with its one-line description. */
export function listExperiments(): CatalogueEntry[] {
  return catalogue('experiment');
}

/** Every shipped sweep with its one-line description. */
export function listSweeps(): CatalogueEntry[] {
  return catalogue('sweep');
}
