/**
 * Durable file primitives shared by every writer that promises "after a crash, either the old
 * state or the new one": the file transport, trainer checkpoints and snapshots.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';

/**
 * Writes all of `data` to `path` and fsyncs it before closing. `flag` 'wx' refuses an existing
 * file (a writer that must never overwrite).
 *
 * @example
 * writeFileSynced(join(tmp, 'manifest.json'), JSON.stringify(manifest), 'wx');
 */
export function writeFileSynced(path: string, data: Uint8Array | string, flag: 'w' | 'wx' = 'w'): void {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const fd = openSync(path, flag);
  try {
    let off = 0;
    while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * fsyncs a directory so that a rename or a new entry in it survives a crash. Best effort: some
 * filesystems refuse fsync on a directory, and the rename itself is atomic anyway; `strict`
 * rethrows instead (snapshots, whose visibility is the whole point).
 *
 * @example
 * renameSync(tmp, final); fsyncDir(dirname(final));
 */
export function fsyncDir(path: string, strict = false): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    fsyncSync(fd);
  } catch (e) {
    if (strict) throw e;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
