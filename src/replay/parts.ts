/**
 * Part files: the replay's output written so far, in a form that can be cut back to a checkpoint.
 *
 * Why: a resumable replay must end with output files equal to those of an uninterrupted run. The
 * final files are written atomically by the file transport's rules (temp file, fsync, rename), so
 * nothing is visible until the end; meanwhile each (partition, output kind) appends its records to
 * a part file `<state>/parts/p<partition>.<kind>.part` as `u32 length ‖ record bytes`, where the
 * record bytes are exactly what the final file holds for it (an NDJSON line without its newline,
 * or the record's Avro binary). A checkpoint fsyncs the parts and records their lengths; a resume
 * truncates them back to those lengths — the recoverable-writer scheme of Flink's file sink
 * (persist, then truncate to the persisted length on recovery).
 *
 * {@link assembleFinal} then concatenates the parts (in partition order) into the final file:
 * NDJSON lines each followed by `\n`, or an Avro object container with the same header, sync
 * marker and 64 KiB block rule as `RecordWriter` in src/io/files.ts — so the bytes equal what the
 * labeler's file transport writes for the same records.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { ContractName } from '../contracts/schemas.ts';
import { schemaJson } from '../contracts/schemas.ts';
import { errorMessage, RankdistillError } from '../errors.ts';
import { deterministicSync, encodeHeader } from '../io/avro-container.ts';
import type { FileFormat } from '../io/files.ts';

/** Same as RecordWriter's AVRO_BLOCK_BYTES (src/io/files.ts): flush a block once it holds 64 KiB. */
const AVRO_BLOCK_BYTES = 64 * 1024;
const FLUSH_BYTES = 1 << 20;

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

/**
 * An append-only part file that can be cut back to a persisted length.
 *
 * @example
 * const part = PartFile.open('state/parts/p0.pointwise.part', 0);
 * part.append(Buffer.from('{"id":"r1:pointwise"}'));
 * const len = part.persist(); // fsynced; record len in the checkpoint
 * part.close();
 */
export class PartFile {
  readonly path: string;
  #fd: number;
  /**
   * Framed records not yet written, copied into one buffer: no length Buffer per record and no
   * concat at flush (the records are often views of an encoder's slab).
   */
  #buf: Buffer = Buffer.allocUnsafeSlow(64 * 1024);
  #pendingBytes = 0;
  #size: number;

  private constructor(path: string, fd: number, size: number) {
    this.path = path;
    this.#fd = fd;
    this.#size = size;
  }

  /**
   * Opens (creating) the part file and truncates it to `length`, the length recorded by the last
   * checkpoint (0 for a fresh run): records appended after that checkpoint are dropped.
   *
   * @throws RankdistillError IO_FAILED, or STATE_STORE_FAILED when the file is shorter than
   *   `length` (the part does not belong to this checkpoint).
   * @example
   * const part = PartFile.open(path, checkpoint.parts.pointwise);
   */
  static open(path: string, length: number): PartFile {
    let fd: number;
    try {
      mkdirSync(dirname(path), { recursive: true });
      fd = openSync(path, existsSync(path) ? 'r+' : 'w+');
    } catch (cause) {
      throw ioError(path, 'cannot open', cause);
    }
    const size = statSync(path).size;
    if (size < length) {
      closeSync(fd);
      throw new RankdistillError(
        'STATE_STORE_FAILED',
        `replay part file ${path} holds ${size} bytes but its checkpoint says ${length}: the replay state is damaged; delete the state directory to start over`,
        { details: { path, size, length } },
      );
    }
    if (size > length) ftruncateSync(fd, length);
    closeSync(fd);
    try {
      fd = openSync(path, 'a');
    } catch (cause) {
      throw ioError(path, 'cannot open', cause);
    }
    return new PartFile(path, fd, length);
  }

  /** Bytes in the part (persisted and pending). */
  get size(): number {
    return this.#size + this.#pendingBytes;
  }

  /** Appends one record (its final bytes, without an NDJSON newline). */
  append(record: Buffer): void {
    const n = record.length;
    if (this.#pendingBytes + 4 + n > this.#buf.length) {
      // Small at first (a partition's dead-letter part rarely holds anything), FLUSH_BYTES after.
      if (this.#buf.length < FLUSH_BYTES) {
        const grown = Buffer.allocUnsafeSlow(FLUSH_BYTES);
        this.#buf.copy(grown, 0, 0, this.#pendingBytes);
        this.#buf = grown;
      }
      if (this.#pendingBytes + 4 + n > this.#buf.length) this.#flush();
      if (4 + n > this.#buf.length) this.#buf = Buffer.allocUnsafeSlow(4 + n);
    }
    const b = this.#buf;
    let at = this.#pendingBytes;
    b[at] = n >>> 24;
    b[at + 1] = (n >>> 16) & 0xff;
    b[at + 2] = (n >>> 8) & 0xff;
    b[at + 3] = n & 0xff;
    at += 4;
    if (n < 64) for (let i = 0; i < n; i++) b[at + i] = record[i] as number;
    else record.copy(b, at);
    this.#pendingBytes = at + n;
  }

  /** Writes what is pending and fsyncs; returns the length to record in the checkpoint. */
  persist(): number {
    this.#flush();
    try {
      fsyncSync(this.#fd);
    } catch (cause) {
      throw ioError(this.path, 'cannot fsync', cause);
    }
    return this.#size;
  }

  /** Closes without persisting what is pending (it is past the last checkpoint anyway). */
  close(): void {
    try {
      closeSync(this.#fd);
    } catch {
      // already closed
    }
  }

  #flush(): void {
    const n = this.#pendingBytes;
    if (n === 0) return;
    this.#pendingBytes = 0;
    writeAll(this.#fd, this.#buf.subarray(0, n), this.path);
    this.#size += n;
  }
}

/**
 * The records of the first `length` bytes of a part file, in order.
 *
 * @throws RankdistillError IO_FAILED when unreadable, STATE_STORE_FAILED when the framing is cut.
 * @example
 * for (const rec of partRecords(path, checkpoint.parts.pointwise)) use(rec);
 */
export function* partRecords(path: string, length: number): Generator<Buffer> {
  // One reader of the framing: forEachPartRecord's, each record copied out of its reused buffer.
  const records: Buffer[] = [];
  forEachPartRecord(path, length, (buf, start, end) => records.push(Buffer.from(buf.subarray(start, end))));
  yield* records;
}

/**
 * Writes the final output file of one kind from its parts (in the order given) atomically:
 * `<path>.tmp-<pid>`, fsync, rename. Byte-identical to `RecordWriter` writing the same records.
 *
 * @example
 * assembleFinal('out/labels.pointwise.avro', 'PointwiseLabels', 'avro', [{ path, length }]);
 */
export function assembleFinal(
  path: string,
  name: ContractName,
  format: FileFormat,
  parts: ReadonlyArray<{ path: string; length: number }>,
): number {
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number;
  try {
    mkdirSync(dirname(path), { recursive: true });
    fd = openSync(tmp, 'w');
  } catch (cause) {
    throw ioError(tmp, 'cannot create', cause);
  }
  let records = 0;
  try {
    const out = new Output(fd, tmp);
    const sync = deterministicSync(name);
    if (format === 'avro') out.put(encodeHeader(schemaJson(name), sync), 0, -1);
    // Avro: the records of the open block, copied one after another (no Buffer per record).
    let block = Buffer.allocUnsafe(2 * AVRO_BLOCK_BYTES);
    let blockBytes = 0;
    let blockCount = 0;
    const flushBlock = () => {
      if (blockCount === 0) return;
      out.put(varints(blockCount, blockBytes), 0, -1);
      out.put(block, 0, blockBytes);
      out.put(sync, 0, -1);
      blockBytes = 0;
      blockCount = 0;
    };
    for (const part of parts) {
      forEachPartRecord(part.path, part.length, (buf, start, end) => {
        records++;
        if (format === 'ndjson') {
          out.put(buf, start, end);
          out.put(NEWLINE, 0, -1);
          return;
        }
        const n = end - start;
        if (blockBytes + n > block.length) {
          const bigger = Buffer.allocUnsafe(2 * (blockBytes + n));
          block.copy(bigger, 0, 0, blockBytes);
          block = bigger;
        }
        buf.copy(block, blockBytes, start, end);
        blockBytes += n;
        blockCount++;
        if (blockBytes >= AVRO_BLOCK_BYTES) flushBlock();
      });
    }
    flushBlock();
    out.flush();
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // closed already
    }
    rmSync(tmp, { force: true });
    throw e;
  }
  return records;
}

const NEWLINE = Buffer.from('\n');

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

/** Buffered writes into one 1 MiB buffer (copied, not collected as a list of small buffers). */
class Output {
  readonly #fd: number;
  readonly #path: string;
  readonly #buf = Buffer.allocUnsafe(FLUSH_BYTES);
  #at = 0;
  constructor(fd: number, path: string) {
    this.#fd = fd;
    this.#path = path;
  }
  /** Appends `b[start, end)` (end −1: to its end). */
  put(b: Buffer, start: number, end: number): void {
    const e = end < 0 ? b.length : end;
    const n = e - start;
    if (this.#at + n > this.#buf.length) {
      this.flush();
      if (n > this.#buf.length) {
        writeAll(this.#fd, b.subarray(start, e), this.#path);
        return;
      }
    }
    b.copy(this.#buf, this.#at, start, e);
    this.#at += n;
  }
  flush(): void {
    if (this.#at === 0) return;
    writeAll(this.#fd, this.#buf.subarray(0, this.#at), this.#path);
    this.#at = 0;
  }
}

/**
 * Calls `fn(buf, start, end)` for each record of the first `length` bytes of a part file, in order;
 * `buf` is reused after `fn` returns. As {@link partRecords}, without a Buffer per record.
 *
 * @throws RankdistillError IO_FAILED when unreadable, STATE_STORE_FAILED when the framing is cut.
 */
export function forEachPartRecord(
  path: string,
  length: number,
  fn: (buf: Buffer, start: number, end: number) => void,
): void {
  if (length === 0) return;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (cause) {
    throw ioError(path, 'cannot open', cause);
  }
  try {
    let buf = Buffer.allocUnsafe(FLUSH_BYTES);
    let have = 0; // valid bytes in buf
    let at = 0; // next record's frame in buf
    let read = 0; // bytes of the file read
    for (;;) {
      while (at + 4 <= have) {
        const n = buf.readUInt32BE(at);
        if (at + 4 + n > have) break;
        fn(buf, at + 4, at + 4 + n);
        at += 4 + n;
      }
      if (read >= length) break;
      // Keep the cut record's bytes at the front; grow when one record exceeds the buffer.
      const rest = have - at;
      const need = at + 4 <= have ? 4 + buf.readUInt32BE(at) : 4;
      if (need > buf.length) {
        const bigger = Buffer.allocUnsafe(need);
        buf.copy(bigger, 0, at, have);
        buf = bigger;
      } else if (at > 0) buf.copy(buf, 0, at, have);
      have = rest;
      at = 0;
      const got = readSync(fd, buf, have, Math.min(buf.length - have, length - read), read);
      if (got === 0) break;
      read += got;
      have += got;
    }
    if (at !== have) {
      throw new RankdistillError(
        'STATE_STORE_FAILED',
        `replay part file ${path} ends inside a record at byte ${read - (have - at)} of ${length}`,
        { details: { path } },
      );
    }
  } finally {
    closeSync(fd);
  }
}
