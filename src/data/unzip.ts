import { createWriteStream, mkdirSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import yauzl from 'yauzl';
import { ReproError } from '../errors.ts';

/**
 * Extracts the named members of a zip archive, each to its destination path (written to a
 * temporary file, then renamed). A missing member or a damaged archive is a one-line error.
 */
export async function extractMembers(zipPath: string, members: Readonly<Record<string, string>>): Promise<void> {
  const zip = await new Promise<yauzl.ZipFile>((resolvePromise, reject) =>
    yauzl.open(zipPath, { lazyEntries: true, autoClose: false }, (err, file) => (err || !file ? reject(err) : resolvePromise(file))),
  ).catch((err: Error) => {
    throw new ReproError(`${zipPath}: not a readable zip archive (${err.message})`);
  });
  const wanted = new Map(Object.entries(members));
  try {
    await new Promise<void>((resolvePromise, reject) => {
      zip.on('error', reject);
      zip.on('end', () => resolvePromise());
      zip.on('entry', (entry: yauzl.Entry) => {
        const target = wanted.get(entry.fileName);
        if (!target) {
          zip.readEntry();
          return;
        }
        zip.openReadStream(entry, (err, stream) => {
          if (err || !stream) return reject(err ?? new Error('no stream'));
          mkdirSync(dirname(target), { recursive: true });
          const tmp = `${target}.${process.pid}.tmp`;
          const out = createWriteStream(tmp);
          stream.on('error', reject);
          out.on('error', reject);
          out.on('finish', () => {
            renameSync(tmp, target);
            wanted.delete(entry.fileName);
            zip.readEntry();
          });
          stream.pipe(out);
        });
      });
      zip.readEntry();
    });
  } catch (err) {
    throw new ReproError(`${zipPath}: extraction failed (${(err as Error).message})`);
  } finally {
    zip.close();
  }
  if (wanted.size > 0) throw new ReproError(`${zipPath}: member ${[...wanted.keys()][0]} not found in the archive`);
}
