/**
 * The file transport: contract records in NDJSON or Avro object container files.
 *
 * - NDJSON (`.ndjson`, `.jsonl`): one JSON record per line, unions unwrapped, bytes as base64
 *   (src/contracts/codec.ts encodeJson/decodeJson). Offsets are 0-based line numbers; blank lines
 *   are skipped but counted.
 * - Avro (`.avro`): object container files with our contract schema in the header (see
 *   ./avro-container.ts for the framing and why it is written here). Offsets are 0-based record
 *   indices across the whole file.
 *
 * Readers stream (a 1 MiB ReadStream and a manual splitter; never the whole file in memory; each
 * record's `raw` is its own copy, safe to keep) and
 * never throw on bad records: a bad line or record comes out as `result.ok === false` with a
 * {@link DecodeError}, its offset and its raw bytes, and the good records around it still come
 * through. Only a missing/unreadable file (IO_FAILED) or a file that is not a container at all
 * (FILE_FORMAT_INVALID) throws.
 *
 * Writers write `<path>.tmp-<pid>`, fsync it and rename it into place on close(), so readers never
 * see half a file; abort() deletes the temporary file. The same records always give the same bytes
 * (the Avro sync marker is derived from the contract name, not drawn at random).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import avro from 'avsc';
import {
  type Decoded,
  decodeAvro,
  decodeJson,
  encodeAvro,
  encodeJson,
  invalidIdFailure,
} from '../contracts/codec.ts';
import {
  avroType,
  boundedTypeHook,
  type ContractName,
  type Contracts,
  schemaJson,
} from '../contracts/schemas.ts';
import { DecodeError, errorMessage, RankdistillError } from '../errors.ts';
import {
  type ContainerHeader,
  deterministicSync,
  encodeBlock,
  encodeHeader,
  inflateBlock,
  readLong,
  tryReadHeader,
} from './avro-container.ts';
import { fsyncDir, writeFileSynced } from './durable.ts';

/** On-disk formats of the file transport. */
export type FileFormat = 'ndjson' | 'avro';

/** One line (NDJSON) or record (Avro) of a file, decoded or not. */
export interface FileRecord<T> {
  /** 0-based line number (NDJSON) or record index (Avro). */
  offset: number;
  /** The line's bytes without the newline (NDJSON), or the record's Avro bytes. */
  raw: Buffer;
  /** The decoded record, or why it could not be decoded. */
  result: Decoded<T>;
}

const READ_CHUNK = 1 << 20;
const WRITE_FLUSH = 1 << 20;
/** Uncompressed bytes per Avro block before it is written (avsc's default too). */
const AVRO_BLOCK_BYTES = 64 * 1024;
const NEWLINE = 0x0a;

/**
 * The format of a file, from its extension.
 *
 * @throws RankdistillError FILE_FORMAT_INVALID for any other extension.
 * @example
 * formatOf('out/impressions.ndjson'); // 'ndjson'
 * formatOf('out/impressions.avro');   // 'avro'
 */
export function formatOf(path: string): FileFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith('.ndjson') || lower.endsWith('.jsonl')) return 'ndjson';
  if (lower.endsWith('.avro')) return 'avro';
  throw new RankdistillError(
    'FILE_FORMAT_INVALID',
    `cannot tell the format of ${path}: expected the extension .ndjson, .jsonl or .avro, found ${
      /\.[^./\\]+$/.exec(path)?.[0] ?? 'none'
    }`,
    { details: { path } },
  );
}

/** File extension (without dot) written for a format. */
export function extensionOf(format: FileFormat): string {
  return format === 'avro' ? 'avro' : 'ndjson';
}

function ioError(path: string, what: string, cause: unknown): RankdistillError {
  return new RankdistillError('IO_FAILED', `${what} ${path}: ${errorMessage(cause)}`, {
    cause,
    details: { path },
  });
}

/**
 * Streams the records of an NDJSON or Avro file (format from the extension).
 *
 * @throws RankdistillError IO_FAILED when the file cannot be opened or read, FILE_FORMAT_INVALID
 *   when an .avro file is not an object container file. Bad records never throw.
 * @example
 * for await (const r of readRecords('in/impressions.ndjson', 'Impression')) {
 *   if (r.result.ok) handle(r.result.value); else deadLetter(r.offset, r.raw, r.result.error);
 * }
 */
export async function* readRecords<N extends ContractName>(
  path: string,
  name: N,
): AsyncGenerator<FileRecord<Contracts[N]>> {
  const format = formatOf(path);
  const chunks = fileChunks(path);
  if (format === 'ndjson') yield* ndjsonRecords(chunks, name);
  else yield* avroRecords(chunks, name, path);
}

/**
 * The bytes of a file in 1 MiB chunks (each a buffer of its own).
 *
 * @throws RankdistillError IO_FAILED when the file cannot be opened or read.
 */
export async function* fileChunks(path: string): AsyncGenerator<Buffer> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch (cause) {
    throw ioError(path, 'cannot open', cause);
  }
  const stream = fh.createReadStream({ highWaterMark: READ_CHUNK });
  try {
    yield* readChunks(stream, path);
  } finally {
    stream.destroy();
    await fh.close().catch(() => undefined);
  }
}

/** The chunks of a read stream, read errors as IO_FAILED. */
async function* readChunks(stream: AsyncIterable<unknown>, path: string): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of stream) yield chunk as Buffer;
  } catch (cause) {
    throw ioError(path, 'cannot read', cause);
  }
}

/** The lines of an NDJSON file as records (blank lines skipped, but counted). */
async function* ndjsonRecords<N extends ContractName>(
  chunks: AsyncIterable<Buffer>,
  name: N,
): AsyncGenerator<FileRecord<Contracts[N]>> {
  for await (const l of ndjsonLines(chunks)) yield { ...l, result: decodeJson(name, l.raw) };
}

/**
 * The non-blank lines of an NDJSON file, not decoded: 0-based line numbers (blank lines counted)
 * and each line's bytes without the newline (and a CR before it), copied.
 */
export async function* ndjsonLines(
  chunks: AsyncIterable<Buffer>,
): AsyncGenerator<{ offset: number; raw: Buffer }> {
  let parts: Buffer[] = [];
  let line = 0;
  const emit = (bytes: Buffer): { offset: number; raw: Buffer } | undefined => {
    const offset = line++;
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 0x0d) end--; // CRLF files
    const raw = end === bytes.length ? bytes : bytes.subarray(0, end);
    if (isBlank(raw)) return undefined;
    // `raw` is copied: callers keep it (join state, dead letters), and a view would pin the whole
    // 1 MiB read chunk; a memcpy is tiny next to JSON.parse.
    return { offset, raw: Buffer.from(raw) };
  };
  for await (const chunk of chunks) {
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE, start); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      const piece = chunk.subarray(start, nl);
      const bytes = parts.length === 0 ? piece : Buffer.concat([...parts, piece]);
      parts = [];
      const rec = emit(bytes);
      if (rec !== undefined) yield rec;
      start = nl + 1;
    }
    if (start < chunk.length) parts.push(chunk.subarray(start));
  }
  if (parts.length > 0) {
    const rec = emit(Buffer.concat(parts));
    if (rec !== undefined) yield rec;
  }
}

function isBlank(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d) return false;
  }
  return true;
}

/** Reading state of one Avro container file. */
export interface AvroReadState<N extends ContractName> {
  name: N;
  header: ContainerHeader;
  reader: avro.Type;
  /** Writer type when the file's schema differs from ours (resolved per Avro's rules). */
  writer: avro.Type | undefined;
  resolver: avro.Type | undefined;
  index: number;
}

export function avroState<N extends ContractName>(
  name: N,
  header: ContainerHeader,
  path: string,
): AvroReadState<N> {
  const reader = avroType(name);
  let writer: avro.Type | undefined;
  let resolver: avro.Type | undefined;
  try {
    const w = avro.Type.forSchema(header.schema as avro.Schema, {
      wrapUnions: 'auto',
      typeHook: boundedTypeHook,
    });
    if (w.fingerprint('sha256').equals(reader.fingerprint('sha256'))) {
      writer = undefined;
    } else {
      writer = w;
      resolver = reader.createResolver(w) as unknown as avro.Type;
    }
  } catch (cause) {
    throw new RankdistillError(
      'FILE_FORMAT_INVALID',
      `${path}: the file's writer schema cannot be read as ${name}: ${errorMessage(cause)}`,
      { cause, details: { path, name } },
    );
  }
  return { name, header, reader, writer, resolver, index: 0 };
}

/**
 * Decodes the `count` records of one block (the last `count` of it, from byte `start`), one
 * FileRecord each (fewer if the block is corrupt).
 */
export function* blockRecords<N extends ContractName>(
  st: AvroReadState<N>,
  data: Buffer,
  count: number,
  start = 0,
): Generator<FileRecord<Contracts[N]>> {
  let p = start;
  for (let i = 0; i < count; i++) {
    const offset = st.index++;
    const last = i === count - 1;
    let end = -1;
    let value: unknown;
    try {
      const res = st.reader.decode(data, p, st.resolver as never) as { value: unknown; offset: number };
      end = res.offset;
      value = res.value;
    } catch {
      end = -1;
    }
    if (end < 0 || (last && end !== data.length)) {
      // Undecodable: the rest of the block cannot be split into records; report it as one bad
      // record and keep the record numbering of later blocks by skipping the block's remainder.
      const raw = Buffer.from(data.subarray(p));
      yield { offset, raw, result: badRecord(st, raw) };
      st.index += count - i - 1;
      return;
    }
    // a copy, not a view: a kept view would pin the whole read buffer
    const raw = Buffer.from(data.subarray(p, end));
    p = end;
    yield {
      offset,
      raw,
      result: st.reader.isValid(value)
        ? (invalidIdFailure(st.name, value) ?? { ok: true, value: value as Contracts[N] })
        : badRecord(st, raw),
    };
  }
  if (count === 0 && data.length > start) {
    yield {
      offset: st.index++,
      raw: Buffer.from(data.subarray(start)),
      result: failed(st.name, `block says 0 records but holds ${data.length - start} bytes`),
    };
  }
}

function badRecord<N extends ContractName>(st: AvroReadState<N>, raw: Buffer): Decoded<Contracts[N]> {
  const r = decodeAvro(st.name, raw, st.writer);
  return r.ok ? failed(st.name, 'record decoded only on its own: corrupt block framing') : r;
}

/** A record the reader could not read, with why. */
export function failed<T>(name: ContractName, message: string): Decoded<T> {
  return { ok: false, error: new DecodeError(`${name}: ${message}`, { details: { name } }) };
}

async function* avroRecords<N extends ContractName>(
  chunks: AsyncIterable<Buffer>,
  name: N,
  path: string,
): AsyncGenerator<FileRecord<Contracts[N]>> {
  for await (const x of avroItems(chunks, name, path)) {
    if ('block' in x) yield* blockRecords(x.st, x.block, x.count);
    else yield x;
  }
}

/**
 * A block of an Avro container file, not yet split into records: its consumer must account for
 * its `count` records in `st.index` (as {@link blockRecords} does) before asking for the next item.
 */
export interface AvroBlock<N extends ContractName> {
  st: AvroReadState<N>;
  /** The block's (inflated) data. */
  block: Buffer;
  count: number;
}

/**
 * The blocks of an Avro container file, and as records what cannot be read as a block (corrupt
 * framing, undecompressable data, a truncated end).
 *
 * @throws RankdistillError as {@link readRecords}.
 */
export async function* avroItems<N extends ContractName>(
  chunks: AsyncIterable<Buffer>,
  name: N,
  path: string,
): AsyncGenerator<FileRecord<Contracts[N]> | AvroBlock<N>> {
  let st: AvroReadState<N> | undefined;
  let resyncing = false;
  const file = basename(path);
  // Items of `buf` from `at` on, as far as it holds whole ones; `done` is where the rest begins.
  let done = 0;
  function* items(buf: Buffer, at: number): Generator<FileRecord<Contracts[N]> | AvroBlock<N>> {
    let pos = at;
    done = pos;
    if (st === undefined) {
      const header = tryReadHeader(buf, path);
      if (header === undefined) return;
      st = avroState(name, header, path);
      pos = header.length;
      done = pos;
    }
    for (;;) {
      if (resyncing) {
        // Corrupt framing: everything up to the next sync marker is one bad record.
        const at = buf.indexOf(st.header.sync, pos);
        if (at < 0) return;
        const raw = Buffer.from(buf.subarray(pos, at));
        pos = at + 16;
        done = pos;
        resyncing = false;
        yield {
          offset: st.index++,
          raw,
          result: failed(name, `corrupt block framing in ${file}; skipped ${raw.length} bytes`),
        };
        continue;
      }
      const block = nextBlock(buf, pos, st.header.sync);
      if (block === 'more') return;
      if (block === 'corrupt') {
        resyncing = true;
        continue;
      }
      pos = block.next;
      done = pos;
      let data: Buffer;
      try {
        data = inflateBlock(st.header.codec, block.data);
      } catch (cause) {
        yield {
          offset: st.index++,
          raw: Buffer.from(block.data),
          result: failed(name, `${st.header.codec} block cannot be decompressed: ${errorMessage(cause)}`),
        };
        st.index += Math.max(0, block.count - 1);
        continue;
      }
      yield { st, block: data, count: block.count };
    }
  }
  // The bytes not yet read as items: a block cut by the end of a chunk, or nothing. A chunk is
  // read in place; only the block spanning two chunks is copied, with as much of the new chunk as
  // it needs (found by doubling from 64 KiB). Joining every chunk to the rest cost a copy of the
  // whole file (3–4% of a replay).
  let left: Buffer = Buffer.alloc(0);
  for await (const chunk of chunks) {
    if (left.length === 0) {
      yield* items(chunk, 0);
      left = chunk.subarray(done);
      continue;
    }
    for (let take = Math.min(chunk.length, 64 * 1024); ; take = Math.min(chunk.length, 2 * take)) {
      const joined = Buffer.concat([left, chunk.subarray(0, take)]);
      yield* items(joined, 0);
      if (done >= left.length) {
        // Past the spanning bytes: the rest of the chunk is read where it is.
        const from = done - left.length;
        yield* items(chunk, from);
        left = chunk.subarray(done);
        break;
      }
      if (take === chunk.length) {
        left = joined.subarray(done);
        break;
      }
      // The spanning item needs more of the chunk. items(joined) stops at the first incomplete
      // item, and header/resync states only move with `done`; but it may have read items before
      // that inside `left` (a block whose corrupt size reached past the old chunk's end looked
      // cut there, and is a bad record once more bytes show its missing sync marker): drop what
      // it read, so the next, longer join does not yield those items again.
      left = left.subarray(done);
    }
  }
  if (st === undefined) {
    throw new RankdistillError(
      'FILE_FORMAT_INVALID',
      left.length === 0
        ? `${path}: empty file, expected an Avro object container header`
        : `${path}: file ends inside the Avro container header (${left.length} bytes)`,
      { details: { path } },
    );
  }
  if (left.length > 0) {
    const raw = Buffer.from(left);
    yield {
      offset: st.index++,
      raw,
      result: failed(name, `${file} ends inside a block (${raw.length} trailing bytes): truncated file`),
    };
  }
}

export type BlockRead = { count: number; data: Buffer; next: number } | 'more' | 'corrupt';

/** The block at `pos`, 'more' when the buffer ends first, or 'corrupt'. */
export function nextBlock(buf: Buffer, pos: number, sync: Buffer): BlockRead {
  if (pos >= buf.length) return 'more';
  let count: { value: number; next: number } | undefined;
  let size: { value: number; next: number } | undefined;
  try {
    count = readLong(buf, pos);
    if (count === undefined) return 'more';
    size = readLong(buf, count.next);
    if (size === undefined) return 'more';
  } catch {
    return 'corrupt';
  }
  if (count.value < 0 || size.value < 0) return 'corrupt';
  const end = size.next + size.value;
  if (end + 16 > buf.length) return 'more';
  if (!buf.subarray(end, end + 16).equals(sync)) return 'corrupt';
  return { count: count.value, data: buf.subarray(size.next, end), next: end + 16 };
}

/**
 * Writes contract records to a file atomically: `<path>.tmp-<pid>` is written, fsynced and renamed
 * into place on close(). Writes are buffered (1 MiB) and synchronous.
 *
 * @example
 * const w = RecordWriter.open('out/impressions.avro', 'Impression');
 * w.write(impression);
 * w.writeRaw(Buffer.from([0xde, 0xad])); // a deliberately malformed record
 * await w.close();
 */
export class RecordWriter<N extends ContractName> {
  readonly path: string;
  readonly name: N;
  readonly format: FileFormat;
  /** Temporary file written until close(). */
  readonly tmpPath: string;
  #fd: number | undefined;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #block: Buffer[] = [];
  #blockBytes = 0;
  #sync: Buffer;
  #records = 0;
  #bytes = 0;

  private constructor(path: string, name: N, format: FileFormat) {
    this.path = path;
    this.name = name;
    this.format = format;
    this.tmpPath = `${path}.tmp-${process.pid}`;
    this.#sync = deterministicSync(name);
    try {
      mkdirSync(dirname(path), { recursive: true });
      this.#fd = openSync(this.tmpPath, 'w');
    } catch (cause) {
      throw ioError(this.tmpPath, 'cannot create', cause);
    }
    if (format === 'avro') this.#push(encodeHeader(schemaJson(name), this.#sync));
  }

  /**
   * Opens a writer; the format defaults to the one of the path's extension.
   *
   * @example
   * const w = RecordWriter.open('out/ranker-outputs.ndjson', 'RankerOutput');
   */
  static open<N extends ContractName>(path: string, name: N, format?: FileFormat): RecordWriter<N> {
    return new RecordWriter(path, name, format ?? formatOf(path));
  }

  /** Records (and raw records) written so far. */
  get records(): number {
    return this.#records;
  }

  /** Bytes written so far (including buffered bytes and the container header). */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Writes one record.
   *
   * @throws RankdistillError ENCODE_FAILED naming the invalid fields.
   * @example
   * w.write({ request_id: 'r1', user_id: 'u1', ts: 0, items: [] });
   */
  write(record: Contracts[N]): void {
    this.#open();
    if (this.format === 'ndjson') {
      this.#push(Buffer.from(`${jsonLine(this.name, record)}\n`));
    } else {
      const b = encodeAvro(this.name, record);
      this.#block.push(b);
      this.#blockBytes += b.length;
      if (this.#blockBytes >= AVRO_BLOCK_BYTES) this.#flushBlock();
    }
    this.#records++;
  }

  /**
   * Writes bytes as one record, unchecked: a line (NDJSON; it must not contain a newline) or a
   * record's Avro bytes (written as a block of its own, so readers can skip it). For tests and the
   * simulator's deliberately malformed records.
   *
   * @example
   * w.writeRaw(Buffer.from('{"request_id": "r1", "us'));
   */
  writeRaw(bytes: Buffer): void {
    this.#open();
    if (this.format === 'ndjson') {
      if (bytes.includes(NEWLINE)) {
        throw new RankdistillError(
          'ENCODE_FAILED',
          `${this.name}: a raw NDJSON line must not contain a newline, found one at byte ${bytes.indexOf(NEWLINE)}`,
        );
      }
      this.#push(Buffer.concat([bytes, Buffer.from('\n')]));
    } else {
      this.#flushBlock();
      this.#push(encodeBlock(1, bytes, this.#sync));
    }
    this.#records++;
  }

  /**
   * Flushes, fsyncs and renames the temporary file into place (then fsyncs the directory).
   *
   * @example
   * await w.close();
   */
  async close(): Promise<void> {
    const fd = this.#open();
    try {
      this.#flushBlock();
      this.#flush();
      fsyncSync(fd);
      closeSync(fd);
      this.#fd = undefined;
      renameSync(this.tmpPath, this.path);
    } catch (cause) {
      await this.abort();
      throw ioError(this.path, 'cannot write', cause);
    }
    syncDir(dirname(this.path));
  }

  /**
   * Discards everything written: closes and deletes the temporary file.
   *
   * @example
   * try { ... } catch (e) { await w.abort(); throw e; }
   */
  async abort(): Promise<void> {
    if (this.#fd !== undefined) {
      try {
        closeSync(this.#fd);
      } catch {
        // already unusable; deleting the file below is what matters
      }
      this.#fd = undefined;
    }
    this.#pending = [];
    this.#block = [];
    rmSync(this.tmpPath, { force: true });
  }

  #open(): number {
    if (this.#fd === undefined) {
      throw new RankdistillError('IO_FAILED', `${this.path}: writer is already closed or aborted`, {
        details: { path: this.path },
      });
    }
    return this.#fd;
  }

  #push(b: Buffer): void {
    this.#pending.push(b);
    this.#pendingBytes += b.length;
    this.#bytes += b.length;
    if (this.#pendingBytes >= WRITE_FLUSH) this.#flush();
  }

  #flushBlock(): void {
    if (this.#block.length === 0) return;
    const data = this.#block.length === 1 ? (this.#block[0] as Buffer) : Buffer.concat(this.#block);
    const n = this.#block.length;
    this.#block = [];
    this.#blockBytes = 0;
    this.#push(encodeBlock(n, data, this.#sync));
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const fd = this.#open();
    const data = this.#pending.length === 1 ? (this.#pending[0] as Buffer) : Buffer.concat(this.#pending);
    this.#pending = [];
    this.#pendingBytes = 0;
    try {
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    } catch (cause) {
      throw ioError(this.tmpPath, 'cannot write', cause);
    }
  }
}

const bytesFree = new Map<ContractName, boolean>();

/**
 * encodeJson's text. For contracts without `bytes` fields (the replacer that turns Buffers into
 * base64 has nothing to do there) it validates and calls JSON.stringify without the per-value
 * replacer, which is ~2x faster on 200-item ranker outputs; the output is identical.
 */
function jsonLine<N extends ContractName>(name: N, record: Contracts[N]): string {
  let free = bytesFree.get(name);
  if (free === undefined) {
    free = !JSON.stringify(schemaJson(name)).includes('"bytes"');
    bytesFree.set(name, free);
  }
  if (!free || !avroType(name).isValid(record)) return encodeJson(name, record); // throws if invalid
  return JSON.stringify(record);
}

/** fsyncs a directory so a rename in it survives a crash (best effort: not every OS allows it). */
const syncDir = (dir: string): void => fsyncDir(dir);

/**
 * Writes `data` to `path` atomically (temp file, fsync, rename): for small side files such as a
 * simulator's truth.json.
 *
 * @example
 * writeFileAtomic('out/truth.json', JSON.stringify(truth));
 */
export function writeFileAtomic(path: string, data: string | Buffer): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSynced(tmp, data);
    renameSync(tmp, path);
  } catch (cause) {
    rmSync(tmp, { force: true });
    throw ioError(path, 'cannot write', cause);
  }
  syncDir(dirname(path));
}
