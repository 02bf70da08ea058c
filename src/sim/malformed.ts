/**
 * The simulator's deliberately malformed records, turned into bytes for one encoding.
 *
 * Kinds (what a labeler should make of them):
 *   - `garbage`: random bytes starting with 0xff and free of CR/LF (so an NDJSON line stays one
 *     line) — neither JSON nor a decodable Avro record → reason MALFORMED.
 *   - `truncated`: a valid encoding cut short (JSON text or Avro bytes; a strict prefix never
 *     decodes, since Avro encodings of one schema are prefix-free and a JSON object needs its
 *     closing brace) → MALFORMED.
 *   - `nan-score` (ranker outputs only): one item's score is NaN. Avro encodes the NaN double, so
 *     the record DECODES and must be rejected by validation → INVALID; NDJSON carries the literal
 *     token `NaN` (what Python's json.dumps writes), which JSON.parse rejects → MALFORMED.
 */
import { encodeAvro, encodeJson } from '../contracts/codec.ts';
import type { Impression, RankerOutput } from '../contracts/types.gen.ts';

/** Byte encoding of records: NDJSON lines or Avro binary (files or Kafka values). */
export type RecordEncoding = 'json' | 'avro';

export type MalformedKind = 'garbage' | 'truncated' | 'nan-score';

/** How to break one record; every random choice was drawn by the generator. */
export interface MalformedSpec {
  kind: MalformedKind;
  /** The garbage bytes (kind `garbage`). */
  bytes: Buffer | null;
  /** Fraction of the encoding kept, in (0, 1) (kind `truncated`). */
  keep: number;
  /** Index of the item whose score becomes NaN (kind `nan-score`). */
  item: number;
}

/** Dead-letter reason class a labeler should give a malformed record in this encoding. */
export function malformedReason(kind: MalformedKind, encoding: RecordEncoding): 'MALFORMED' | 'INVALID' {
  return kind === 'nan-score' && encoding === 'avro' ? 'INVALID' : 'MALFORMED';
}

const NAN_MARK = '__rankdistill_sim_NaN__';

/**
 * The bytes of a malformed record.
 *
 * @example
 * malformedBytes('RankerOutput', rec, { kind: 'nan-score', bytes: null, keep: 0, item: 3 }, 'json');
 */
export function malformedBytes(
  name: 'RankerOutput' | 'Impression',
  record: RankerOutput | Impression,
  spec: MalformedSpec,
  encoding: RecordEncoding,
): Buffer {
  switch (spec.kind) {
    case 'garbage':
      return Buffer.from(spec.bytes ?? Buffer.from([0xff]));
    case 'truncated': {
      const full =
        encoding === 'json'
          ? Buffer.from(
              name === 'RankerOutput'
                ? encodeJson('RankerOutput', record as RankerOutput)
                : encodeJson('Impression', record as Impression),
            )
          : name === 'RankerOutput'
            ? encodeAvro('RankerOutput', record as RankerOutput)
            : encodeAvro('Impression', record as Impression);
      const keep = Math.min(full.length - 1, Math.max(1, Math.floor(full.length * spec.keep)));
      return Buffer.from(full.subarray(0, keep));
    }
    case 'nan-score': {
      const r = record as RankerOutput;
      const k = Math.min(spec.item, r.items.length - 1);
      if (encoding === 'avro') {
        const items = r.items.map((it, i) => (i === k ? { ...it, score: Number.NaN } : it));
        return encodeAvro('RankerOutput', { ...r, items });
      }
      const items = r.items.map((it, i) => (i === k ? { ...it, score: NAN_MARK } : it));
      return Buffer.from(JSON.stringify({ ...r, items }).replace(`"${NAN_MARK}"`, 'NaN'));
    }
  }
}
