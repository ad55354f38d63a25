import { createWriteStream, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { ReproError } from '../errors.ts';

function openZip(zipPath: string): Promise<yauzl.ZipFile> {
  return new Promise((resolvePromise, reject) =>
    yauzl.open(zipPath, { lazyEntries: true, autoClose: false }, (err, file) => (err || !file ? reject(err ?? new Error('no archive')) : resolvePromise(file))),
  );
}

function openEntry(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<NodeJS.ReadableStream> {
  return new Promise((resolvePromise, reject) => zip.openReadStream(entry, (err, stream) => (err || !stream ? reject(err ?? new Error('no stream')) : resolvePromise(stream))));
}

/** Writes one member through a temporary sibling, renamed into place only when complete. */
async function extractEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, target: string): Promise<void> {
  mkdirSync(dirname(target), { recursive: true });
  const tmp = `${target}.${process.pid}.tmp`;
  try {
    await pipeline(await openEntry(zip, entry), createWriteStream(tmp));
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** The entries of an archive, one at a time (yauzl's lazy mode), until `visit` has seen them all. */
async function forEachEntry(zip: yauzl.ZipFile, visit: (entry: yauzl.Entry) => Promise<void>): Promise<void> {
  await new Promise<void>((resolvePromise, reject) => {
    zip.on('error', reject);
    zip.on('end', () => resolvePromise());
    zip.on('entry', (entry: yauzl.Entry) => {
      visit(entry).then(() => zip.readEntry(), reject);
    });
    zip.readEntry();
  });
}

/**
 * Extracts the named members of a zip archive (member name → destination path). yauzl checks
 * each member's size against its header; a missing member or a damaged archive is one
 * ReproError naming the archive.
 */
export async function extractMembers(zipPath: string, members: Readonly<Record<string, string>>): Promise<void> {
  const zip = await openZip(zipPath).catch((err: Error) => {
    throw new ReproError(`${zipPath}: not a readable zip archive (${err.message})`);
  });
  const wanted = new Map(Object.entries(members));
  try {
    await forEachEntry(zip, async (entry) => {
      const target = wanted.get(entry.fileName);
      if (target === undefined) return;
      await extractEntry(zip, entry, target);
      wanted.delete(entry.fileName);
    });
  } catch (err) {
    throw new ReproError(`${zipPath}: extraction failed (${(err as Error).message})`);
  } finally {
    zip.close();
  }
  if (wanted.size > 0) throw new ReproError(`${zipPath}: member ${[...wanted.keys()].join(', ')} not found in the archive`);
}
