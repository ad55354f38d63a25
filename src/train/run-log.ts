import { appendFileSync } from 'node:fs';

/**
 * The per-run JSONL log (runs/<run_id>/log.jsonl): one JSON object per line with a `time` (ISO)
 * and an `event` field. Appended line by line, so a crash loses at most the line being written
 * and a resumed run continues the same file.
 */
export class RunLog {
  constructor(readonly file: string) {}

  /** Field names are written in snake_case, like the results CSV's columns. */
  write(event: string, fields: Record<string, unknown>): void {
    const record = { time: new Date().toISOString(), event, ...snakeCaseKeys(fields) };
    appendFileSync(this.file, `${JSON.stringify(record, (_, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v))}\n`);
  }
}

function snakeCaseKeys(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), v]));
}
