/**
 * Part files: the replay's output written so far, already in the bytes of the final file, in a
 * form that can be cut back to a checkpoint.
 *
 * Why: a resumable replay must end with output files equal to those of an uninterrupted run. The
 * final files appear atomically at the end; meanwhile each (partition, output kind) appends to a
 * part file `<state>/parts/p<partition>.<kind>.part` the bytes the final file holds for its
 * records: NDJSON lines, or whole Avro container blocks (count, size, records, sync marker; the
 * first partition's part starts with the container header). A checkpoint fsyncs the parts and
 * records their lengths; a resume truncates them back to those lengths — the recoverable-writer
 * scheme of Flink's file sink (persist, then truncate to the persisted length on recovery).
 *
 * An Avro block is cut once it holds 64 KiB (RecordWriter's rule in src/io/files.ts), never at a
 * checkpoint, so the bytes do not depend on when checkpoints fell: the records of the open block
 * at checkpoint k go to a tail file `<part>.tail-<k>` (a u32 count, then the records), which a
 * resume from k reads back into the open block.
 *
 * {@link assembleFinal} then makes the final file: the first part *is* its beginning (hard-linked,
 * not copied, where the filesystem allows), the other parts are appended as they are. With one
 * partition the final file equals what RecordWriter writes for the same records; with several, each
 * partition's records start a new Avro block. Before, parts held length-framed records that the
 * assembly copied and re-blocked one by one: at 200 candidates the copy, its fsync and the deletion
 * of the parts took a quarter of a replay.
 */
import {
  closeSync,
  existsSync,
  fdatasync,
  fsyncSync,
  ftruncateSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ContractName } from '../contracts/schemas.ts';
import { schemaJson } from '../contracts/schemas.ts';
import { errorMessage, RankdistillError } from '../errors.ts';
import { deterministicSync, encodeHeader } from '../io/avro-container.ts';
import { fsyncDir } from '../io/durable.ts';
import type { FileFormat } from '../io/files.ts';
import { pidAlive } from '../io/pid.ts';

/** Same as RecordWriter's AVRO_BLOCK_BYTES (src/io/files.ts): flush a block once it holds 64 KiB. */
const AVRO_BLOCK_BYTES = 64 * 1024;
const FLUSH_BYTES = 1 << 20;
/** Written bytes after which a part starts writing them to disk in the background. */
const SYNC_AHEAD_BYTES = 8 << 20;

function ioError(path: string, what: string, cause: unknown): RankdistillError {
  return new RankdistillError('IO_FAILED', `${what} ${path}: ${errorMessage(cause)}`, {
    cause,
    details: { path },
  });
}

function writeAll(fd: number, data: Buffer, path: string): void {
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
  } catch (cause) {
    throw ioError(path, 'cannot write', cause);
  }
}

/** What a part file persisted at a checkpoint: its length, and its tail file's (0: none). */
export interface PartState {
  length: number;
  tail: number;
}

/** How a part file writes: the final file's format, and for Avro its contract and header. */
export interface PartFormat {
  format: FileFormat;
  /** Contract of the records (Avro: the container's schema and sync marker). */
  name: ContractName;
  /** Avro: this part begins the final file, so it starts with the container header. */
  header: boolean;
}

/** The tail file of a part at checkpoint k. */
export function tailPath(path: string, k: number): string {
  return `${path}.tail-${k}`;
}

/**
 * An append-only part file in the final file's bytes, that can be cut back to a checkpoint.
 *
 * @example
 * const part = PartFile.open('state/parts/p0.pointwise.part', { format: 'avro', name: 'PointwiseLabels', header: true }, 0, { length: 0, tail: 0 });
 * part.append(encodeAvro('PointwiseLabels', labels));
 * const st = part.persist(1, false); // fsynced; record st in checkpoint 1
 * part.close();
 */
export class PartFile {
  readonly path: string;
  readonly #fmt: PartFormat;
  readonly #sync: Buffer;
  #fd: number;
  /** Bytes not yet written (whole NDJSON lines, whole Avro blocks). */
  #out: Buffer = Buffer.allocUnsafeSlow(64 * 1024);
  #outBytes = 0;
  /** Avro: the records of the open block, one after another. */
  #block: Buffer = Buffer.allocUnsafeSlow(0);
  #blockBytes = 0;
  #blockCount = 0;
  /** Bytes in the file (written, not necessarily persisted). */
  #size: number;
  /** Tail files written by the last two persists (the older one is still a checkpoint's). */
  #tails: string[] = [];
  /** Bytes written since the last fdatasync started, whether one runs, and a close waiting for it. */
  #unsynced = 0;
  #syncing = false;
  #closing = false;

  private constructor(path: string, fmt: PartFormat, fd: number, size: number) {
    this.path = path;
    this.#fmt = fmt;
    this.#sync = fmt.format === 'avro' ? deterministicSync(fmt.name) : Buffer.alloc(0);
    this.#fd = fd;
    this.#size = size;
  }

  /**
   * Opens (creating) the part file and cuts it back to the state checkpoint `k` recorded
   * (`{ length: 0, tail: 0 }` for a fresh run): output after that checkpoint is dropped, and the
   * open Avro block of that checkpoint is read back from its tail file.
   *
   * @throws RankdistillError IO_FAILED, or STATE_STORE_FAILED when the file is shorter than the
   *   checkpoint says or its tail file is missing or cut (the part does not belong to it).
   */
  static open(path: string, fmt: PartFormat, k: number, st: PartState): PartFile {
    let fd: number;
    try {
      mkdirSync(dirname(path), { recursive: true });
      fd = openSync(path, existsSync(path) ? 'r+' : 'w+');
    } catch (cause) {
      throw ioError(path, 'cannot open', cause);
    }
    const size = statSync(path).size;
    if (size < st.length) {
      closeSync(fd);
      throw damaged(path, `holds ${size} bytes but its checkpoint says ${st.length}`, {
        size,
        length: st.length,
      });
    }
    if (size > st.length) ftruncateSync(fd, st.length);
    closeSync(fd);
    try {
      fd = openSync(path, 'a');
    } catch (cause) {
      throw ioError(path, 'cannot open', cause);
    }
    const part = new PartFile(path, fmt, fd, st.length);
    part.#restoreTail(k, st.tail);
    if (st.length === 0 && fmt.format === 'avro' && fmt.header)
      part.#put(encodeHeader(schemaJson(fmt.name), part.#sync));
    return part;
  }

  /** Bytes of the part's records so far (written, pending and in the open block). */
  get size(): number {
    return this.#size + this.#outBytes + this.#blockBytes;
  }

  /** Appends one record (its final bytes: an NDJSON line without its newline, or Avro binary). */
  append(record: Buffer): void {
    if (this.#fmt.format === 'ndjson') {
      this.#put(record, 1);
      this.#out[this.#outBytes - 1] = 0x0a;
      return;
    }
    const n = record.length;
    if (this.#blockBytes + n > this.#block.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(2 * AVRO_BLOCK_BYTES, 2 * (this.#blockBytes + n)));
      this.#block.copy(bigger, 0, 0, this.#blockBytes);
      this.#block = bigger;
    }
    const b = this.#block;
    const at = this.#blockBytes;
    if (n < 64) for (let i = 0; i < n; i++) b[at + i] = record[i] as number;
    else record.copy(b, at);
    this.#blockBytes = at + n;
    this.#blockCount++;
    if (this.#blockBytes >= AVRO_BLOCK_BYTES) this.#flushBlock();
  }

  /**
   * Writes what is pending and fsyncs, for checkpoint `k`. The open Avro block goes to the tail
   * file of k, or, with `last` (no record will follow), into the part as its last block.
   *
   * @returns what to record in checkpoint k.
   */
  persist(k: number, last: boolean): PartState {
    if (last) this.#flushBlock();
    this.#write();
    try {
      fsyncSync(this.#fd);
    } catch (cause) {
      throw ioError(this.path, 'cannot fsync', cause);
    }
    let tail = 0;
    if (this.#blockCount > 0) {
      const t = tailPath(this.path, k);
      const head = Buffer.allocUnsafe(4);
      head.writeUInt32BE(this.#blockCount, 0);
      let fd: number;
      try {
        fd = openSync(t, 'w');
      } catch (cause) {
        throw ioError(t, 'cannot create', cause);
      }
      try {
        writeAll(fd, head, t);
        writeAll(fd, this.#block.subarray(0, this.#blockBytes), t);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      tail = 4 + this.#blockBytes;
      this.#tails.push(t);
    }
    // The tail before the previous one belongs to no checkpoint a resume can pick any more.
    while (this.#tails.length > 2) rmSync(this.#tails.shift() as string, { force: true });
    return { length: this.#size, tail };
  }

  /** Closes without persisting what is pending (it is past the last checkpoint anyway). */
  close(): void {
    // Not while an fdatasync runs on the descriptor: its number could be reused meanwhile.
    if (this.#syncing) {
      this.#closing = true;
      return;
    }
    this.#closing = false;
    try {
      closeSync(this.#fd);
    } catch {
      // already closed
    }
  }

  /** Reads the open block of checkpoint k back and deletes every other tail file of the part. */
  #restoreTail(k: number, bytes: number): void {
    const dir = dirname(this.path);
    const prefix = `${basename(this.path)}.tail-`;
    const keep = tailPath(this.path, k);
    for (const n of readdirSync(dir)) {
      if (n.startsWith(prefix) && join(dir, n) !== keep) rmSync(join(dir, n), { force: true });
    }
    if (bytes === 0) return;
    let t: Buffer;
    try {
      t = readFileSync(keep);
    } catch (cause) {
      throw damaged(keep, `cannot be read (${errorMessage(cause)})`, {});
    }
    if (t.length < bytes || bytes < 4)
      throw damaged(keep, `holds ${t.length} bytes but its checkpoint says ${bytes}`, {});
    this.#block = Buffer.allocUnsafeSlow(Math.max(2 * AVRO_BLOCK_BYTES, 2 * bytes));
    t.copy(this.#block, 0, 4, bytes);
    this.#blockBytes = bytes - 4;
    this.#blockCount = t.readUInt32BE(0);
    this.#tails.push(keep);
  }

  #flushBlock(): void {
    if (this.#blockCount === 0) return;
    this.#put(varints(this.#blockCount, this.#blockBytes));
    this.#put(this.#block.subarray(0, this.#blockBytes));
    this.#put(this.#sync);
    this.#blockBytes = 0;
    this.#blockCount = 0;
  }

  /** Copies `b` into the pending bytes, and `extra` more bytes of room after it. */
  #put(b: Buffer, extra = 0): void {
    const n = b.length + extra;
    if (this.#outBytes + n > this.#out.length) {
      // Small at first (a partition's dead-letter part rarely holds anything), FLUSH_BYTES after.
      if (this.#out.length < FLUSH_BYTES) {
        const grown = Buffer.allocUnsafeSlow(FLUSH_BYTES);
        this.#out.copy(grown, 0, 0, this.#outBytes);
        this.#out = grown;
      }
      if (this.#outBytes + n > this.#out.length) this.#write();
      if (n > this.#out.length) this.#out = Buffer.allocUnsafeSlow(n);
    }
    const at = this.#outBytes;
    if (b.length < 64) for (let i = 0; i < b.length; i++) this.#out[at + i] = b[i] as number;
    else b.copy(this.#out, at);
    this.#outBytes = at + n;
  }

  #write(): void {
    const n = this.#outBytes;
    if (n === 0) return;
    this.#outBytes = 0;
    writeAll(this.#fd, this.#out.subarray(0, n), this.path);
    this.#size += n;
    this.#unsynced += n;
    if (this.#unsynced >= SYNC_AHEAD_BYTES && !this.#syncing) this.#syncAhead();
  }

  /**
   * Starts writing the part's data to disk in libuv's pool while the task goes on (an fdatasync
   * nobody waits for), so the checkpoint's fsync finds little left to write: at 200 candidates a
   * part grows by ~50 MB between checkpoints, and flushing it all at the checkpoint left the
   * replay waiting on the disk (~6% of its time). Durability is still the checkpoint's fsync.
   */
  #syncAhead(): void {
    this.#syncing = true;
    this.#unsynced = 0;
    fdatasync(this.#fd, () => {
      // An error here is the checkpoint fsync's to report (it fails the same way).
      this.#syncing = false;
      if (this.#closing) this.close();
    });
  }
}

function damaged(path: string, what: string, details: Record<string, unknown>): RankdistillError {
  return new RankdistillError(
    'STATE_STORE_FAILED',
    `replay part file ${path} ${what}: the replay state is damaged; delete the state directory to start over`,
    { details: { path, ...details } },
  );
}

/** Bytes one step of the assembly's copy moves. */
const COPY_STEP_BYTES = 2 << 20;
/** Copy steps of one final file in flight at once (libuv's pool runs 4 by default). */
const COPY_STEPS_AT_ONCE = 4;

/**
 * Writes the final output file from its parts (in the order given, each persisted as last)
 * atomically: `<path>.tmp-<pid>`, fsync, rename. The first part becomes the file (a hard link to
 * it, so its bytes are not copied; a copy where the filesystem refuses links), the others are
 * copied in after it: each part's place in the file is known from the lengths, so the copy runs
 * as positioned reads and writes of `step` bytes, several at once on libuv's threads, and the
 * final files of a replay are assembled side by side (before: one file after the other, one
 * buffer at a time, 15% of a 2-thread replay's wall time spent on one core at the end).
 * Parts of an Avro file must come from PartFiles of the same contract, the first with the header.
 *
 * @returns the bytes of the final file.
 * @example
 * await assembleFinal('out/labels.pointwise.avro', [{ path, length }]);
 */
export async function assembleFinal(
  path: string,
  parts: ReadonlyArray<{ path: string; length: number }>,
  step = COPY_STEP_BYTES,
): Promise<number> {
  const tmp = `${path}.tmp-${process.pid}`;
  const first = parts[0];
  let linked = false;
  let out: FileHandle;
  try {
    mkdirSync(dirname(path), { recursive: true });
    removeDeadTmps(path);
    rmSync(tmp, { force: true });
    if (first !== undefined && first.length > 0) {
      try {
        linkSync(first.path, tmp);
        linked = true;
      } catch {
        // another filesystem (EXDEV), or links refused: copied below
      }
    }
    out = await open(tmp, linked ? 'r+' : 'w');
  } catch (cause) {
    throw ioError(tmp, 'cannot create', cause);
  }
  const sources: FileHandle[] = [];
  try {
    let size = 0;
    if (linked && first !== undefined) {
      // The same inode as the first part: cut back to its persisted length (an assembly that
      // crashed may have appended to it; nothing else writes to a finished part).
      await out.truncate(first.length);
      size = first.length;
    }
    const steps: CopyStep[] = [];
    for (const part of linked ? parts.slice(1) : parts) {
      if (part.length === 0) continue;
      let src: FileHandle;
      try {
        src = await open(part.path, 'r');
      } catch (cause) {
        throw ioError(part.path, 'cannot open', cause);
      }
      sources.push(src);
      for (let from = 0; from < part.length; from += step) {
        steps.push({
          src,
          path: part.path,
          length: part.length,
          from,
          to: size + from,
          n: Math.min(step, part.length - from),
        });
      }
      size += part.length;
    }
    let next = 0;
    let failed = false;
    const copier = async () => {
      const buf = Buffer.allocUnsafe(Math.min(step, size));
      while (!failed && next < steps.length) {
        try {
          await copyStep(steps[next++] as CopyStep, out, tmp, buf);
        } catch (e) {
          failed = true;
          throw e;
        }
      }
    };
    const copies = await Promise.allSettled(
      Array.from({ length: Math.min(COPY_STEPS_AT_ONCE, steps.length) }, copier),
    );
    const bad = copies.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (bad !== undefined) throw bad.reason;
    try {
      await out.sync();
      await out.close();
    } catch (cause) {
      throw ioError(tmp, 'cannot write', cause);
    }
    renameSync(tmp, path);
    fsyncDir(dirname(path));
    return size;
  } catch (e) {
    await out.close().catch(() => undefined);
    rmSync(tmp, { force: true });
    throw e;
  } finally {
    for (const src of sources) await src.close().catch(() => undefined);
  }
}

/**
 * Removes `<path>.tmp-<pid>` files of assemblies whose process died (a replay stopped by a second
 * Ctrl-C, or killed, while writing its final files); a live process's are kept.
 */
function removeDeadTmps(path: string): void {
  const prefix = `${basename(path)}.tmp-`;
  for (const name of readdirSync(dirname(path))) {
    if (!name.startsWith(prefix)) continue;
    const pid = name.slice(prefix.length);
    if (/^\d+$/.test(pid) && !pidAlive(Number(pid))) rmSync(join(dirname(path), name), { force: true });
  }
}

/** `n` bytes of a part from byte `from` on, to byte `to` of the final file. */
interface CopyStep {
  src: FileHandle;
  path: string;
  length: number;
  from: number;
  to: number;
  n: number;
}

async function copyStep(s: CopyStep, out: FileHandle, tmp: string, buf: Buffer): Promise<void> {
  let got = 0;
  while (got < s.n) {
    let r: number;
    try {
      r = (await s.src.read(buf, got, s.n - got, s.from + got)).bytesRead;
    } catch (cause) {
      throw ioError(s.path, 'cannot read', cause);
    }
    if (r === 0) throw damaged(s.path, `ends at byte ${s.from + got} of ${s.length}`, {});
    got += r;
  }
  let put = 0;
  try {
    while (put < s.n) put += (await out.write(buf, put, s.n - put, s.to + put)).bytesWritten;
  } catch (cause) {
    throw ioError(tmp, 'cannot write', cause);
  }
}

/** A block's count and size as Avro longs (zig-zag varints), as `encodeBlock` writes them. */
function varints(count: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(20);
  let p = 0;
  for (let v of [count * 2, size * 2]) {
    while (v >= 0x80) {
      b[p++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b[p++] = v;
  }
  return b.subarray(0, p);
}
