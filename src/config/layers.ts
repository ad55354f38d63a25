import YAML from 'yaml';
import { ReproError } from '../errors.ts';
import { isMapping, type Mapping } from './yaml-file.ts';

/** One contribution to a config (a file of an extends chain, a `--set`, a flag) and where it came from. */
export interface Layer {
  source: string;
  data: Mapping;
}

export interface MergedLayers {
  data: Mapping;
  /** dotted key -> source of the layer that last set it (leaves and whole replaced subtrees) */
  sources: Map<string, string>;
}

function cloneValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(cloneValue);
  if (isMapping(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, cloneValue(v)]));
  return value;
}

function recordSources(value: unknown, key: string, source: string, sources: Map<string, string>): void {
  sources.set(key, source);
  if (isMapping(value)) for (const [child, v] of Object.entries(value)) recordSources(v, `${key}.${child}`, source, sources);
}

function mergeInto(target: Mapping, layer: Mapping, prefix: string, source: string, sources: Map<string, string>): void {
  for (const [key, value] of Object.entries(layer)) {
    const dotted = prefix ? `${prefix}.${key}` : key;
    const current = target[key];
    if (isMapping(current) && isMapping(value)) {
      mergeInto(current, value, dotted, source, sources);
    } else {
      target[key] = cloneValue(value);
      recordSources(value, dotted, source, sources);
    }
  }
}

/** Deep merge, later layers winning; mappings merge key by key, everything else (lists too) is replaced. */
export function mergeLayers(layers: readonly Layer[]): MergedLayers {
  const data: Mapping = {};
  const sources = new Map<string, string>();
  for (const layer of layers) mergeInto(data, layer.data, '', layer.source, sources);
  return { data, sources };
}

const DOTTED_KEY = /^[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*$/;

/** `{a: {b: value}}` for the dotted key "a.b". */
export function nestDotted(key: string, value: unknown): Mapping {
  return key
    .split('.')
    .reduceRight<unknown>((inner, segment) => ({ [segment]: inner }), value) as Mapping;
}

export function isDottedKey(key: string): boolean {
  return DOTTED_KEY.test(key);
}

/**
 * A `--set key=value` override as a layer. The value is read as a YAML scalar (so numbers, booleans,
 * null and "2^-10" strings behave as in a file); whether the key exists is checked with the rest
 * of the config, naming this override as the source.
 */
export function setOverrideLayer(assignment: string, sourcePrefix: string): Layer {
  const source = `${sourcePrefix} (--set ${assignment})`;
  const equals = assignment.indexOf('=');
  const key = equals < 0 ? '' : assignment.slice(0, equals).trim();
  if (!isDottedKey(key))
    throw new ReproError(`${source}: expected --set dotted.key=value, e.g. --set model.hidden=256`);
  let value: unknown;
  try {
    value = YAML.parse(assignment.slice(equals + 1)) as unknown;
  } catch (err) {
    throw new ReproError(`${source}: ${key}: invalid YAML value (${(err as Error).message.split('\n')[0]})`);
  }
  return { source, data: nestDotted(key, value) };
}
