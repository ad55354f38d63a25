import { basename, dirname } from 'node:path';
import { ReproError } from '../errors.ts';
import { resolveCatalogueFile, type CatalogueKind } from './catalogue.ts';
import type { Layer } from './layers.ts';
import { displayPath } from './paths.ts';
import { readYamlMapping } from './yaml-file.ts';

export interface FileChain {
  /** one layer per file, most distant ancestor first */
  layers: Layer[];
  /** the same files as paths, most distant ancestor first */
  files: string[];
}

function fileStem(file: string): string {
  return basename(file).replace(/\.ya?ml$/, '');
}

/**
 * A file and its `extends` ancestors (names of the same kind, or .yaml paths relative to the
 * extending file). `name` and `description` belong to each file itself and are not inherited:
 * `name` defaults to the file name, `description` to "".
 */
export function fileChain(file: string, kind: CatalogueKind): FileChain {
  const layers: Layer[] = [];
  const visiting: string[] = [];
  let current: string | undefined = file;
  while (current !== undefined) {
    if (visiting.includes(current)) {
      const cycle = [...visiting.slice(visiting.indexOf(current)), current].map(displayPath).join(' -> ');
      throw new ReproError(`${displayPath(visiting[visiting.length - 1] as string)}: extends: cycle ${cycle}`);
    }
    visiting.push(current);
    const data = { ...readYamlMapping(current) };
    const parent = data['extends'];
    delete data['extends'];
    if (layers.length > 0) {
      delete data['name'];
      delete data['description'];
    }
    layers.unshift({ source: displayPath(current), data });
    if (parent === undefined || parent === null) {
      current = undefined;
    } else if (typeof parent !== 'string' || parent.trim() === '') {
      throw new ReproError(
        `${displayPath(current)}: extends: expected ${kind === 'experiment' ? 'an' : 'a'} ${kind} name or a relative .yaml path, got ${JSON.stringify(parent)}`,
      );
    } else {
      current = resolveCatalogueFile(parent, kind, {
        relativeTo: dirname(current),
        context: `${displayPath(current)}: extends`,
      });
    }
  }
  const own = layers[layers.length - 1] as Layer;
  own.data = { name: fileStem(file), description: '', ...own.data };
  return { layers, files: [...visiting].reverse() };
}
