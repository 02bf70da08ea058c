/**
 * Types shared by the label client: the three label kinds, their record types and the typed error
 * of a label message that cannot be decoded.
 */
import type avro from 'avsc';
import { type Decoded, decodeAvro, decodeConfluent } from '../contracts/codec.ts';
import type { ContractName } from '../contracts/schemas.ts';
import type { ListwiseLabels, PairwiseLabels, PointwiseLabels } from '../contracts/types.gen.ts';
import { type DecodeError, RankdistillError } from '../errors.ts';

/** The label kinds rankdistill publishes, one topic each. */
export const LABEL_KINDS = ['pointwise', 'pairwise', 'listwise'] as const;

/** `'pointwise' | 'pairwise' | 'listwise'`. */
export type LabelKind = (typeof LABEL_KINDS)[number];

/** Record type of each label kind. */
export interface LabelsByKind {
  pointwise: PointwiseLabels;
  pairwise: PairwiseLabels;
  listwise: ListwiseLabels;
}

/** Avro contract (schemas/<name>.avsc) of each label kind. */
export const LABEL_CONTRACT = {
  pointwise: 'PointwiseLabels',
  pairwise: 'PairwiseLabels',
  listwise: 'ListwiseLabels',
} as const satisfies Record<LabelKind, ContractName>;

/** Wire formats the labeler writes (`kafka.outputFormat`). */
export type LabelWireFormat = 'avro' | 'confluent';

/**
 * Decodes one label payload of the given kind. Never throws. For `confluent`, `writerFor` maps a
 * schema id to the writer schema (a registry cache, see `RegistrySerde.writerFor`); without it the
 * writer is assumed to be our own schema.
 *
 * @example
 * const r = decodeLabel('pairwise', message.value, 'avro');
 * if (r.ok) for (const p of r.value.pairs) use(p.pos_item, p.neg_item);
 */
export function decodeLabel<K extends LabelKind>(
  kind: K,
  buf: Buffer,
  format: LabelWireFormat,
  writerFor?: (schemaId: number) => avro.Type | undefined,
): Decoded<LabelsByKind[K]> {
  const name = LABEL_CONTRACT[kind];
  const r = format === 'confluent' ? decodeConfluent(name, buf, writerFor) : decodeAvro(name, buf);
  return r as Decoded<LabelsByKind[K]>;
}

/** Throws unless `kind` is one of {@link LABEL_KINDS}: callers from plain JS get a clear message. */
export function assertLabelKind(kind: unknown): asserts kind is LabelKind {
  if (!(LABEL_KINDS as readonly unknown[]).includes(kind)) {
    throw new RankdistillError(
      'USAGE',
      `label kind must be one of ${LABEL_KINDS.join(', ')}, found ${JSON.stringify(kind)}`,
      { details: { kind } },
    );
  }
}

/**
 * A label message (or file record) that could not be decoded, with where it was found: `topic`,
 * `partition` and `offset` for Kafka, `file` and `offset` (byte offset or line) for files. The
 * `code` is the decoder's (`DECODE_FAILED`, `VALIDATION_FAILED`, `SCHEMA_ID_UNKNOWN`).
 */
export class LabelDecodeError extends RankdistillError {
  override readonly name = 'LabelDecodeError';
  /** Topic (Kafka) or path (files) of the bad record. */
  readonly source: string;
  /** Partition, or -1 for files. */
  readonly partition: number;
  /** Kafka offset, or the file reader's offset of the record. */
  readonly offset: string;

  constructor(
    kind: LabelKind,
    where: { source: string; partition: number; offset: string },
    cause: DecodeError,
  ) {
    const at =
      where.partition >= 0
        ? `topic ${where.source} partition ${where.partition} offset ${where.offset}`
        : `file ${where.source} at ${where.offset}`;
    super(cause.code, `undecodable ${LABEL_CONTRACT[kind]} at ${at}: ${cause.message}`, {
      cause,
      details: { kind, ...where },
    });
    this.source = where.source;
    this.partition = where.partition;
    this.offset = where.offset;
  }
}
