import { z } from 'zod';
import { ReproError } from '../errors.ts';

/** Names where the value at a dotted key came from (a file, a `--set`, a flag). */
export type SourceOf = (dottedKey: string) => string;

export function dottedKey(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

export function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let node = data;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/** How a value is shown in an error message: strings quoted, containers by kind. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (value !== null && typeof value === 'object') return 'a mapping';
  return String(value);
}

/** The keys a strict object accepts at `path` of `schema`, looking through wrappers and unions. */
export function allowedKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] | undefined {
  const found = objectsAt(schema, path);
  if (found.length === 0) return undefined;
  return [...new Set(found.flatMap((object) => Object.keys(object.shape)))];
}

/** Every dotted key a schema's (nested) strict objects accept, sections and leaves alike. */
export function schemaKeys(schema: z.ZodType, prefix = ''): string[] {
  return (allowedKeysAt(schema, []) ?? []).flatMap((key) => {
    const dotted = prefix ? `${prefix}.${key}` : key;
    const children = objectsAt(schema, [key]).flatMap((child) => schemaKeys(child, dotted));
    return [dotted, ...children];
  });
}

function objectsAt(schema: z.ZodType, path: readonly PropertyKey[]): z.ZodObject[] {
  const candidates = unwrap(schema);
  if (path.length === 0) return candidates.filter((c): c is z.ZodObject => c instanceof z.ZodObject);
  const [head, ...rest] = path;
  return candidates.flatMap((candidate) => {
    if (!(candidate instanceof z.ZodObject)) return [];
    const child = (candidate.shape as Record<string, z.ZodType>)[String(head)];
    return child ? objectsAt(child, rest) : [];
  });
}

function unwrap(schema: z.ZodType): z.ZodType[] {
  if (schema instanceof z.ZodOptional || schema instanceof z.ZodNullable || schema instanceof z.ZodDefault)
    return unwrap(schema.unwrap() as z.ZodType);
  if (schema instanceof z.ZodPipe) return [...unwrap(schema.in as z.ZodType), ...unwrap(schema.out as z.ZodType)];
  if (schema instanceof z.ZodUnion) return (schema.options as z.ZodType[]).flatMap(unwrap);
  return [schema];
}

const EXPECTED_WORDS: Record<string, string> = {
  int: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
};

function issueMessage(issue: z.core.$ZodIssue, value: unknown, schema: z.ZodType): string {
  const got = `got ${describeValue(value)}`;
  if (value === undefined && issue.code !== 'unrecognized_keys') return 'missing (required)';
  switch (issue.code) {
    case 'unrecognized_keys': {
      const allowed = allowedKeysAt(schema, issue.path);
      return allowed ? `unknown key; expected one of ${allowed.join('|')}` : 'unknown key';
    }
    case 'invalid_value':
      return `expected one of ${issue.values.map(String).join('|')}, ${got}`;
    case 'invalid_type':
      return `expected ${EXPECTED_WORDS[issue.expected] ?? issue.expected}, ${got}`;
    case 'too_small':
      if (issue.origin === 'array')
        return `expected at least ${String(issue.minimum)} ${Number(issue.minimum) === 1 ? 'entry' : 'entries'}, ${got}`;
      return `expected a ${issue.origin === 'string' ? 'string of length' : 'number'} ${issue.inclusive ? '>=' : '>'} ${String(issue.minimum)}, ${got}`;
    case 'too_big':
      return `expected a number ${issue.inclusive ? '<=' : '<'} ${String(issue.maximum)}, ${got}`;
    case 'invalid_union':
      return issue.message.startsWith('Invalid input') ? `invalid value, ${got}` : `${issue.message}, ${got}`;
    default:
      return `${issue.message}, ${got}`;
  }
}

/** The full dotted key an issue is about (for an unknown key: the key itself). */
function issuePath(issue: z.core.$ZodIssue): PropertyKey[] {
  if (issue.code === 'unrecognized_keys') return [...issue.path, issue.keys[0] ?? ''];
  return [...issue.path];
}

/**
 * One line for a failed validation: the source of the offending value, its dotted key and what
 * was expected. Unknown keys come first because a misspelt key often explains the other problems.
 */
export function validationError(
  error: z.ZodError,
  data: unknown,
  schema: z.ZodType,
  sourceOf: SourceOf,
): ReproError {
  const issues = [...error.issues].sort(
    (a, b) => Number(b.code === 'unrecognized_keys') - Number(a.code === 'unrecognized_keys'),
  );
  const first = issues[0];
  if (!first) return new ReproError(`${sourceOf('')}: invalid configuration`);
  const path = issuePath(first);
  const key = dottedKey(path);
  const message = issueMessage(first, valueAt(data, first.path), schema);
  const extra = issues.length - 1 + (first.code === 'unrecognized_keys' ? first.keys.length - 1 : 0);
  const more = extra > 0 ? ` (and ${extra} more problem${extra === 1 ? '' : 's'})` : '';
  return new ReproError(`${sourceOf(key)}: ${key || '(top level)'}: ${message}${more}`);
}
