/**
 * Avro object container framing (Avro spec, "Object Container Files"), written and read block by
 * block so that one corrupt record never hides the good records around it.
 *
 * Layout: `Obj\x01` magic, a metadata map (`avro.schema`, `avro.codec`), a 16-byte sync marker,
 * then blocks of `long count, long size, <size bytes of concatenated records>, sync marker`.
 *
 * Why not avsc's BlockEncoder/BlockDecoder streams: a BlockDecoder stops at the first record it
 * cannot read (it emits 'error'), cannot say which bytes a record came from, and a BlockEncoder
 * cannot write deliberately malformed records. We keep avsc for every record and header codec and
 * write the framing here; files are standard containers that avsc's `createFileDecoder` reads
 * (tested), and files written by avsc's BlockEncoder read here (tested).
 *
 * A deliberately malformed record (`RecordWriter.writeRaw`) is written as a block of its own
 * (count 1), so the reader can skip it by the block's byte size and resume at the next block.
 */
import { createHash } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import avro from 'avsc';
import { RankdistillError } from '../errors.ts';

/** First 4 bytes of every Avro object container file. */
export const AVRO_MAGIC = Buffer.from('Obj\x01', 'latin1');

const HEADER_TYPE = avro.Type.forSchema(
  {
    name: 'Header',
    namespace: 'org.apache.avro.file',
    type: 'record',
    fields: [
      { name: 'magic', type: { type: 'fixed', name: 'Magic', size: 4 } },
      { name: 'meta', type: { type: 'map', values: 'bytes' } },
      { name: 'sync', type: { type: 'fixed', name: 'Sync', size: 16 } },
    ],
  },
  {},
);

const LONG = avro.Type.forSchema('long');

/** Parsed container header. */
export interface ContainerHeader {
  /** Writer schema (JSON) from `avro.schema`. */
  schema: unknown;
  /** Compression codec: `null` or `deflate`. */
  codec: string;
  /** The 16-byte sync marker. */
  sync: Buffer;
  /** Bytes the header occupies at the start of the file. */
  length: number;
}

/**
 * A sync marker that depends only on `label` (we pass the contract name), so that the same
 * records always give the same file bytes ("same seed → same bytes"). The spec only asks the
 * marker to be unlikely to appear inside the data; 16 bytes of a hash are.
 *
 * @example
 * const sync = deterministicSync('RankerOutput'); // 16 bytes, same on every run
 */
export function deterministicSync(label: string): Buffer {
  return createHash('sha256').update(`rankdistill.avro-container:${label}`).digest().subarray(0, 16);
}

/**
 * Encodes a container header.
 *
 * @example
 * const head = encodeHeader(schemaJson('Impression'), deterministicSync('Impression'));
 */
export function encodeHeader(schema: unknown, sync: Buffer, codec = 'null'): Buffer {
  return HEADER_TYPE.toBuffer({
    magic: AVRO_MAGIC,
    meta: { 'avro.schema': Buffer.from(JSON.stringify(schema)), 'avro.codec': Buffer.from(codec) },
    sync,
  });
}

/**
 * Encodes one block: count, size, the concatenated record bytes, the sync marker.
 *
 * @example
 * const block = encodeBlock(2, Buffer.concat([rec1, rec2]), sync);
 */
export function encodeBlock(count: number, data: Buffer, sync: Buffer): Buffer {
  return Buffer.concat([LONG.toBuffer(count), LONG.toBuffer(data.length), data, sync]);
}

/** Reads a zig-zag varint long at `pos`; returns undefined when the buffer ends first. */
export function readLong(buf: Buffer, pos: number): { value: number; next: number } | undefined {
  let n = 0;
  let k = 0;
  let p = pos;
  let b: number;
  let mul = 1;
  do {
    if (p >= buf.length) return undefined;
    b = buf[p++] as number;
    n += (b & 0x7f) * mul;
    mul *= 128;
    k++;
    if (k > 10) throw new Error('varint longer than 10 bytes');
  } while (b & 0x80);
  // zig-zag: even → n/2, odd → -(n+1)/2 (arithmetic, not bit ops: values exceed 32 bits)
  const value = n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  return { value, next: p };
}

/**
 * Parses the header at the start of `buf`. Returns undefined when more bytes are needed.
 *
 * @throws RankdistillError FILE_FORMAT_INVALID when the magic bytes or the metadata are wrong.
 * @example
 * const h = tryReadHeader(firstChunk, 'data.avro');
 */
export function tryReadHeader(buf: Buffer, file: string): ContainerHeader | undefined {
  if (buf.length < AVRO_MAGIC.length) return undefined;
  if (!buf.subarray(0, 4).equals(AVRO_MAGIC)) {
    throw new RankdistillError(
      'FILE_FORMAT_INVALID',
      `${file}: not an Avro object container file: expected magic bytes 4f 62 6a 01, found ${buf
        .subarray(0, 4)
        .toString('hex')}`,
      { details: { file } },
    );
  }
  let res: { value: unknown; offset: number };
  try {
    res = HEADER_TYPE.decode(buf, 0) as { value: unknown; offset: number };
  } catch (cause) {
    throw new RankdistillError('FILE_FORMAT_INVALID', `${file}: corrupt Avro container header`, {
      cause,
      details: { file },
    });
  }
  if (res.offset < 0) return undefined;
  const h = res.value as { meta: Record<string, Buffer>; sync: Buffer };
  const schemaBytes = h.meta['avro.schema'];
  if (schemaBytes === undefined) {
    throw new RankdistillError('FILE_FORMAT_INVALID', `${file}: container header has no avro.schema`, {
      details: { file },
    });
  }
  let schema: unknown;
  try {
    schema = JSON.parse(schemaBytes.toString('utf8'));
  } catch (cause) {
    throw new RankdistillError('FILE_FORMAT_INVALID', `${file}: avro.schema in the header is not JSON`, {
      cause,
      details: { file },
    });
  }
  const codec = h.meta['avro.codec']?.toString('utf8') || 'null';
  if (codec !== 'null' && codec !== 'deflate') {
    throw new RankdistillError(
      'FILE_FORMAT_INVALID',
      `${file}: unsupported Avro codec: expected null or deflate, found ${codec}`,
      { details: { file, codec } },
    );
  }
  return { schema, codec, sync: Buffer.from(h.sync), length: res.offset };
}

/** Decompresses a block's data with the header's codec. */
export function inflateBlock(codec: string, data: Buffer): Buffer {
  return codec === 'deflate' ? inflateRawSync(data) : data;
}
