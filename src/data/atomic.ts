import { renameSync, writeFileSync } from 'node:fs';

/** Writes a file through a temporary sibling and a rename, so readers never see half a file. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}
