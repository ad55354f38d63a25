import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { ReproError } from '../errors.ts';
import { displayPath } from './paths.ts';

export type Mapping = Record<string, unknown>;

export function isMapping(value: unknown): value is Mapping {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The first line of a YAML library message, without its own "at line L, column C" suffix. */
function shortYamlMessage(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '');
}

/** Parses YAML text; a syntax error becomes one line naming `where`, the line and the column. */
export function parseYaml(text: string, where: string): unknown {
  const doc = YAML.parseDocument(text);
  const error = doc.errors[0];
  if (error) {
    const pos = error.linePos?.[0];
    const at = pos ? `:${pos.line}:${pos.col}` : '';
    throw new ReproError(`${where}${at}: invalid YAML: ${shortYamlMessage(error.message)}`);
  }
  return doc.toJS() as unknown;
}

/** Reads a YAML file whose top level must be a mapping (an empty file is an empty mapping). */
export function readYamlMapping(file: string): Mapping {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ReproError(`${displayPath(file)}: ${code === 'ENOENT' ? 'file not found' : `cannot read (${code ?? String(err)})`}`);
  }
  const data = parseYaml(text, displayPath(file));
  if (data === null || data === undefined) return {};
  if (!isMapping(data)) throw new ReproError(`${displayPath(file)}: expected a mapping of keys at the top level`);
  return data;
}
