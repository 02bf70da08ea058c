/**
 * Binary form of join state entries: the value of a changelog record and of a SQLite row.
 *
 * Layout (big-endian):
 *   u8 version(1) | u8 kind | f64 ts | f64 expiresAt
 *   block only:   markers (src/join/marker-blocks.ts)
 *   pending only: u8 side | u8 format | i32 partition | f64 offset | u16 topicLen | topic
 *                 | i32 keyLen (-1 = null) | key | raw...
 *
 * Pending records keep the record's bytes as received (Avro for the Kafka transport), not JSON,
 * so millions of open requests cost little more than their wire size.
 */
import type { WireFormat } from '../contracts/codec.ts';
import { RankdistillError } from '../errors.ts';
import type { Side, StateEntry } from './types.ts';

const VERSION = 1;
const KINDS = ['pending', 'joined', 'unmatched', 'block'] as const;
const SIDES: readonly Side[] = ['ranker', 'impression'];
const FORMATS: readonly WireFormat[] = ['avro', 'confluent', 'json'];

/**
 * Encodes a state entry.
 *
 * @example
 * const b = encodeEntry({ kind: 'joined', ts: 10, expiresAt: 610_010 });
 * decodeEntry(b); // { kind: 'joined', ts: 10, expiresAt: 610010 }
 */
export function encodeEntry(e: StateEntry): Buffer {
  if (e.kind === 'block') {
    const b = Buffer.allocUnsafe(18 + e.markers.length);
    b.writeUInt8(VERSION, 0);
    b.writeUInt8(KINDS.indexOf(e.kind), 1);
    b.writeDoubleBE(e.ts, 2);
    b.writeDoubleBE(e.expiresAt, 10);
    e.markers.copy(b, 18);
    return b;
  }
  if (e.kind !== 'pending') {
    const b = Buffer.alloc(18);
    b.writeUInt8(VERSION, 0);
    b.writeUInt8(KINDS.indexOf(e.kind), 1);
    b.writeDoubleBE(e.ts, 2);
    b.writeDoubleBE(e.expiresAt, 10);
    return b;
  }
  const topic = Buffer.from(e.source.topic, 'utf8');
  const keyLen = e.key === null ? 0 : e.key.length;
  const head = Buffer.alloc(18 + 1 + 1 + 4 + 8 + 2 + topic.length + 4 + keyLen);
  let o = 0;
  o = head.writeUInt8(VERSION, o);
  o = head.writeUInt8(0, o);
  o = head.writeDoubleBE(e.ts, o);
  o = head.writeDoubleBE(e.expiresAt, o);
  o = head.writeUInt8(SIDES.indexOf(e.side), o);
  o = head.writeUInt8(FORMATS.indexOf(e.format), o);
  o = head.writeInt32BE(e.source.partition, o);
  o = head.writeDoubleBE(e.source.offset, o);
  o = head.writeUInt16BE(topic.length, o);
  o += topic.copy(head, o);
  o = head.writeInt32BE(e.key === null ? -1 : keyLen, o);
  if (e.key !== null) e.key.copy(head, o);
  return Buffer.concat([head, e.raw]);
}

/**
 * Decodes a state entry written by {@link encodeEntry}.
 *
 * @throws RankdistillError STATE_STORE_FAILED on bytes that are not an entry.
 * @example
 * decodeEntry(encodeEntry(entry));
 */
export function decodeEntry(b: Buffer): StateEntry {
  try {
    if (b.readUInt8(0) !== VERSION) throw new Error(`unknown entry version ${b.readUInt8(0)}`);
    const kind = KINDS[b.readUInt8(1)];
    const ts = b.readDoubleBE(2);
    const expiresAt = b.readDoubleBE(10);
    if (kind === undefined) throw new Error(`unknown entry kind ${b.readUInt8(1)}`);
    if (kind === 'block') {
      if (b.length < 18) throw new Error('truncated entry');
      return { kind, ts, expiresAt, markers: b.subarray(18) };
    }
    if (kind !== 'pending') return { kind, ts, expiresAt };
    let o = 18;
    const side = SIDES[b.readUInt8(o++)];
    const format = FORMATS[b.readUInt8(o++)];
    if (side === undefined || format === undefined) throw new Error('bad side or format');
    const partition = b.readInt32BE(o);
    o += 4;
    const offset = b.readDoubleBE(o);
    o += 8;
    const tlen = b.readUInt16BE(o);
    o += 2;
    const topic = b.toString('utf8', o, o + tlen);
    o += tlen;
    const klen = b.readInt32BE(o);
    o += 4;
    let key: Buffer | null = null;
    if (klen >= 0) {
      key = Buffer.from(b.subarray(o, o + klen));
      o += klen;
    }
    if (o > b.length) throw new Error('truncated entry');
    return {
      kind,
      side,
      ts,
      expiresAt,
      source: { topic, partition, offset },
      key,
      format,
      raw: Buffer.from(b.subarray(o)),
    };
  } catch (cause) {
    throw new RankdistillError(
      'STATE_STORE_FAILED',
      `cannot decode a join state entry of ${b.length} bytes: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/** Stream-time record value: 8 bytes, f64 big-endian. */
export function encodeStreamTime(ts: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(ts, 0);
  return b;
}

/** Inverse of {@link encodeStreamTime}. */
export function decodeStreamTime(b: Buffer): number {
  if (b.length !== 8) {
    throw new RankdistillError('STATE_STORE_FAILED', `stream-time record must be 8 bytes, found ${b.length}`);
  }
  return b.readDoubleBE(0);
}

/** Changelog key of the stream-time record (request ids never start with a NUL byte). */
export const STREAM_TIME_KEY = '\u0000stream-time';

/**
 * The input positions one committed transaction moved the task to: the next offset of its
 * partition of each input, -1 for an input not consumed yet. Written to the changelog in the same
 * transaction as the consumer offsets, so a restored task knows them without trusting the
 * group's offset fetch (which, before Kafka 3.9.1, could still return the previous ones right
 * after the transaction completed: KAFKA-17507).
 */
export interface InputOffsets {
  ranker: number;
  impression: number;
}

/** Input-offsets record value: 16 bytes, two f64 big-endian (ranker, impression). */
export function encodeInputOffsets(o: InputOffsets): Buffer {
  const b = Buffer.alloc(16);
  b.writeDoubleBE(o.ranker, 0);
  b.writeDoubleBE(o.impression, 8);
  return b;
}

/** Inverse of {@link encodeInputOffsets}. */
export function decodeInputOffsets(b: Buffer): InputOffsets {
  if (b.length !== 16) {
    throw new RankdistillError(
      'STATE_STORE_FAILED',
      `input-offsets record must be 16 bytes, found ${b.length}`,
    );
  }
  return { ranker: b.readDoubleBE(0), impression: b.readDoubleBE(8) };
}

/** Changelog key of the input-offsets record. */
export const INPUT_OFFSETS_KEY = '\u0000input-offsets';
