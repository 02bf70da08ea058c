/**
 * The snapshot directory on disk: atomic writes, stale-temp cleanup, listing, checksum-verified
 * loading.
 *
 * Atomic write (the classic "write temp, fsync, rename, fsync parent" of e.g. LevelDB's CURRENT
 * file and Kafka's checkpoint files, applied to a directory):
 *
 *   1. write every file into `<root>/.tmp-v<N>-<pid>/`, fsync each file;
 *   2. write `manifest.json` (sizes + sha256 of every file) last, fsync it;
 *   3. fsync every directory inside the temp dir and the temp dir itself (their entries);
 *   4. rename the temp dir to `<root>/v<N>` — atomic on POSIX within one file system, and it fails
 *      instead of overwriting when `v<N>` exists;
 *   5. fsync `<root>` so the rename itself survives a power cut.
 *
 * A process killed at any point leaves either no `v<N>` or a complete one; leftovers are only
 * `.tmp-*` directories, which {@link cleanStaleTemps} removes at the next start (those of live
 * processes are kept). The registry only names a version after step 5 (publisher.ts).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { errorMessage, RankdistillError } from '../errors.ts';
import { fsyncDir, writeFileSynced } from '../io/durable.ts';
import { pidAlive } from '../io/pid.ts';
import { checkFileName, type FileEntry, MANIFEST_FILE, type Manifest, parseManifest } from './manifest.ts';
import { decodeTable, parseTableHeader, type VectorTable } from './table.ts';

/** A file to put in a snapshot: a snapshot-relative name and its bytes. */
export interface SnapshotFileInput {
  name: string;
  data: Uint8Array;
}

const VERSION_DIR = /^v(\d+)$/;
const TEMP_DIR = /^\.tmp-v(\d+)-(\d+)$/;

/** Hex sha256 of bytes. @example sha256Hex(Buffer.from('')) // 'e3b0c442...' */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Directory of version `version` under `root`. @example versionDir('snapshots', 3) // 'snapshots/v3' */
export function versionDir(root: string, version: number): string {
  return join(root, `v${version}`);
}

function ioError(what: string, path: string, e: unknown): RankdistillError {
  return new RankdistillError('IO_FAILED', `${what} ${path}: ${errorMessage(e)}`, {
    cause: e,
    details: { path },
  });
}

function fsyncPath(path: string): void {
  fsyncDir(path, true);
}

function writeFileDurable(path: string, data: Uint8Array): void {
  writeFileSynced(path, data, 'wx');
}

/** Test hook: called between the steps of {@link writeSnapshotDir} (the crash tests kill there). */
export type WriteStepHook = (step: 'file' | 'manifest' | 'fsynced' | 'renamed', name?: string) => void;

/**
 * Writes a snapshot atomically into `<root>/v<version>` (see the module comment) and returns the
 * manifest as written. `manifestFor(files)` builds the manifest once the checksums are known.
 *
 * @throws RankdistillError IO_FAILED when a write fails or `v<version>` already exists (the temp dir
 *   is removed); TRAIN_INPUT_INVALID for a bad or duplicate file name.
 * @example
 * const m = writeSnapshotDir('snapshots', 4, files, (entries) => ({ ...meta, files: entries }));
 */
export function writeSnapshotDir(
  root: string,
  version: number,
  files: readonly SnapshotFileInput[],
  manifestFor: (entries: FileEntry[]) => Manifest,
  hook?: WriteStepHook,
): { manifest: Manifest; manifestSha256: string; manifestBytes: number; dir: string } {
  const names = new Set<string>();
  for (const f of files) {
    checkFileName(f.name);
    if (names.has(f.name))
      throw new RankdistillError('TRAIN_INPUT_INVALID', `snapshot file ${f.name}: given twice`);
    names.add(f.name);
  }
  mkdirSync(root, { recursive: true });
  const tmp = join(root, `.tmp-v${version}-${process.pid}`);
  const final = versionDir(root, version);
  if (existsSync(final))
    throw new RankdistillError('IO_FAILED', `snapshot ${final}: expected a new version, found it exists`, {
      details: { path: final },
    });
  rmSync(tmp, { recursive: true, force: true });
  try {
    mkdirSync(tmp);
    const dirs = new Set<string>([tmp]);
    const entries: FileEntry[] = [];
    for (const f of files) {
      const path = join(tmp, f.name);
      const parent = dirname(path);
      if (!dirs.has(parent)) {
        mkdirSync(parent, { recursive: true });
        for (let d = parent; d !== tmp && !dirs.has(d); d = dirname(d)) dirs.add(d);
      }
      writeFileDurable(path, f.data);
      entries.push({ name: f.name, sha256: sha256Hex(f.data), bytes: f.data.byteLength });
      hook?.('file', f.name);
    }
    const manifest = manifestFor(entries);
    const manifestData = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
    writeFileDurable(join(tmp, MANIFEST_FILE), manifestData);
    hook?.('manifest');
    // deepest first, so a directory's entry is durable before its parent's
    for (const d of [...dirs].sort((a, b) => b.length - a.length)) fsyncPath(d);
    hook?.('fsynced');
    renameSync(tmp, final);
    fsyncPath(root);
    hook?.('renamed');
    return {
      manifest,
      manifestSha256: sha256Hex(manifestData),
      manifestBytes: manifestData.byteLength,
      dir: resolve(final),
    };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    if (e instanceof RankdistillError) throw e;
    throw ioError('cannot write snapshot', final, e);
  }
}

/**
 * Removes `.tmp-v<N>-<pid>` directories left by writers that died (a live writer's are kept).
 * Returns the names removed.
 *
 * @example
 * cleanStaleTemps('snapshots'); // ['.tmp-v7-41234']
 */
export function cleanStaleTemps(root: string): string[] {
  if (!existsSync(root)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(root)) {
    const m = TEMP_DIR.exec(name);
    if (!m || pidAlive(Number(m[2]))) continue;
    rmSync(join(root, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Versions present as complete directories `v<N>` under `root` (ascending). Temp dirs are not
 * versions.
 *
 * @example
 * listVersionDirs('snapshots'); // [1, 2, 3]
 */
export function listVersionDirs(root: string): number[] {
  if (!existsSync(root)) return [];
  const out: number[] = [];
  for (const name of readdirSync(root)) {
    const m = VERSION_DIR.exec(name);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

/** Highest version number used under `root` by a complete or temporary directory (0 when none). */
export function highestVersionOnDisk(root: string): number {
  if (!existsSync(root)) return 0;
  let max = 0;
  for (const name of readdirSync(root)) {
    const m = VERSION_DIR.exec(name) ?? TEMP_DIR.exec(name);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max;
}

/** A snapshot read from disk with every file verified against its checksum. */
export interface LoadedSnapshot {
  version: number;
  dir: string;
  manifest: Manifest;
  /** sha256 of manifest.json. */
  manifestSha256: string;
  /** Bytes of a verified file, by snapshot-relative name. */
  file(name: string): Buffer;
  /** A verified embedding table (`items`, `users`, ...), decoded lazily and cached. */
  table(name: string): VectorTable | undefined;
}

function corrupt(dir: string, file: string, message: string): RankdistillError {
  return new RankdistillError('SNAPSHOT_CORRUPT', `snapshot ${dir}: file ${file}: ${message}`, {
    details: { dir, file },
  });
}

/**
 * Loads the snapshot in `dir`, verifying the size and sha256 of every file listed in its manifest
 * (and, when `expected` is given — from the registry or an announcement — that the manifest and
 * the file list are the ones announced).
 *
 * @throws RankdistillError SNAPSHOT_CORRUPT naming the missing, truncated or altered file;
 *   SNAPSHOT_NOT_FOUND when the directory does not exist.
 * @example
 * const s = loadSnapshotDir('snapshots/v3');
 * const items = s.table('items'); // { ids, dim, vectors }
 */
export function loadSnapshotDir(dir: string, expected?: readonly FileEntry[]): LoadedSnapshot {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new RankdistillError('SNAPSHOT_NOT_FOUND', `snapshot ${dir}: expected a directory, found none`, {
      details: { dir },
    });
  const read = (name: string): Buffer => {
    try {
      return readFileSync(join(dir, name));
    } catch (e) {
      throw corrupt(
        dir,
        name,
        `expected it to exist, found ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`,
      );
    }
  };
  const manifestData = read(MANIFEST_FILE);
  const manifestSha256 = sha256Hex(manifestData);
  const expectedManifest = expected?.find((f) => f.name === MANIFEST_FILE);
  if (expectedManifest && expectedManifest.sha256 !== manifestSha256)
    throw corrupt(dir, MANIFEST_FILE, `expected sha256 ${expectedManifest.sha256}, found ${manifestSha256}`);
  let manifest: Manifest;
  try {
    manifest = parseManifest(manifestData);
  } catch (e) {
    throw corrupt(dir, MANIFEST_FILE, errorMessage(e).replace(`snapshot file ${MANIFEST_FILE}: `, ''));
  }
  const data = new Map<string, Buffer>();
  for (const f of manifest.files) {
    const bytes = read(f.name);
    if (bytes.byteLength !== f.bytes)
      throw corrupt(
        dir,
        f.name,
        `expected ${f.bytes} bytes, found ${bytes.byteLength} (truncated or altered)`,
      );
    const sum = sha256Hex(bytes);
    if (sum !== f.sha256) throw corrupt(dir, f.name, `expected sha256 ${f.sha256}, found ${sum}`);
    data.set(f.name, bytes);
  }
  if (expected) {
    for (const e of expected) {
      if (e.name === MANIFEST_FILE) continue;
      const f = manifest.files.find((x) => x.name === e.name);
      if (!f || f.sha256 !== e.sha256)
        throw corrupt(
          dir,
          e.name,
          `expected sha256 ${e.sha256} as announced, found ${f ? f.sha256 : 'no such file'}`,
        );
    }
  }
  const tables = new Map<string, VectorTable>();
  const file = (name: string): Buffer => {
    const b = data.get(name);
    if (b === undefined) throw corrupt(dir, name, 'expected it in the manifest, found it unlisted');
    return b;
  };
  return {
    version: manifest.version,
    dir: resolve(dir),
    manifest,
    manifestSha256,
    file,
    table(name: string): VectorTable | undefined {
      const cached = tables.get(name);
      if (cached) return cached;
      const headerName = manifest.tables[name];
      if (headerName === undefined) return undefined;
      const header = parseTableHeader(headerName, file(headerName));
      const t = decodeTable(header, file(header.vectors), file(header.ids));
      tables.set(name, t);
      return t;
    },
  };
}

/** Every file of a written snapshot as listed in registry/announcements: data files + manifest. */
export function announcedFiles(
  manifest: Manifest,
  manifestSha256: string,
  manifestBytes: number,
): FileEntry[] {
  return [...manifest.files, { name: MANIFEST_FILE, sha256: manifestSha256, bytes: manifestBytes }];
}
