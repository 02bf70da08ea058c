/**
 * The one error hierarchy of rankdistill.
 *
 * Every error thrown by library code is a {@link RankdistillError} with a stable `code` from the
 * closed list {@link ERROR_CODES} and a `retriable` flag, so callers branch on codes, never on
 * message text. Messages say what was expected and what was found.
 *
 * @example
 * try { loadConfig(path) } catch (e) {
 *   if (isRankdistillError(e, 'CONFIG_INVALID')) console.error(e.message);
 * }
 */

/** Closed catalogue of error codes, with whether retrying the same operation can succeed. */
export const ERROR_CODES = {
  /** The configuration file or an environment override failed validation. */
  CONFIG_INVALID: { retriable: false },
  /** The configuration file could not be read or parsed. */
  CONFIG_UNREADABLE: { retriable: false },
  /** A schema file is missing or is not valid Avro. */
  SCHEMA_INVALID: { retriable: false },
  /** Bytes could not be decoded (truncated, garbage, wrong schema, bad JSON). */
  DECODE_FAILED: { retriable: false },
  /** A record decoded but broke a contract rule (NaN score, duplicate item, ...). */
  VALIDATION_FAILED: { retriable: false },
  /** A record could not be encoded with its schema. */
  ENCODE_FAILED: { retriable: false },
  /** A Confluent wire-format schema id is unknown to us and to the registry. */
  SCHEMA_ID_UNKNOWN: { retriable: false },
  /** The schema registry could not be reached or refused a request. */
  SCHEMA_REGISTRY_FAILED: { retriable: true },
  /** The schema registry refused a schema as incompatible with the subject's earlier versions. */
  SCHEMA_INCOMPATIBLE: { retriable: false },
  /** The label generators were given input they cannot label. */
  LABEL_INPUT_INVALID: { retriable: false },
  /** The two input topics are not co-partitioned. */
  COPARTITION_MISMATCH: { retriable: false },
  /** A topic the service needs does not exist and topic creation is off. */
  TOPIC_MISSING: { retriable: false },
  /** The Kafka cluster could not be reached or answered with an error. */
  KAFKA_UNAVAILABLE: { retriable: true },
  /** The Kafka cluster refused our credentials (wrong user or password, expired token, TLS refused). */
  KAFKA_AUTHENTICATION_FAILED: { retriable: false },
  /** The Kafka cluster's authorizer refused an operation: an ACL is missing (named in the message). */
  KAFKA_AUTHORIZATION_FAILED: { retriable: false },
  /** The Kafka broker does not accept the protocol versions the client sends (ApiVersions check). */
  KAFKA_INCOMPATIBLE: { retriable: false },
  /** This instance was fenced by a newer one holding the same transactional id. */
  PRODUCER_FENCED: { retriable: false },
  /** The local state store could not be opened, read or written. */
  STATE_STORE_FAILED: { retriable: false },
  /** A file input or output could not be read or written. */
  IO_FAILED: { retriable: true },
  /** A file is not in the expected format. */
  FILE_FORMAT_INVALID: { retriable: false },
  /** A snapshot file is missing, truncated or fails its checksum. */
  SNAPSHOT_CORRUPT: { retriable: false },
  /** A snapshot version does not exist in the registry. */
  SNAPSHOT_NOT_FOUND: { retriable: false },
  /** A snapshot failed the evaluation gate. */
  SNAPSHOT_REJECTED: { retriable: false },
  /** The TensorFlow.js backend is unavailable or lacks a kernel. */
  BACKEND_UNAVAILABLE: { retriable: false },
  /** A model or training input has the wrong shape or content. */
  TRAIN_INPUT_INVALID: { retriable: false },
  /** A labeler stream thread failed to start or exited unexpectedly. */
  THREAD_FAILED: { retriable: false },
  /** Command-line usage error. */
  USAGE: { retriable: false },
  /** The operation was interrupted (signal, abort). */
  ABORTED: { retriable: true },
} as const satisfies Record<string, { retriable: boolean }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Base class of every rankdistill error. */
export class RankdistillError extends Error {
  override readonly name: string = 'RankdistillError';
  readonly code: ErrorCode;
  readonly retriable: boolean;
  /** Structured facts about the failure (field, value, topic, ...). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retriable = ERROR_CODES[code].retriable;
    this.details = Object.freeze({ ...(options.details ?? {}) });
  }
}

/** Configuration is invalid; `issues` lists every offending field. */
export class ConfigError extends RankdistillError {
  override readonly name = 'ConfigError';
  readonly issues: readonly { path: string; message: string; value: unknown }[];
  constructor(
    message: string,
    issues: readonly { path: string; message: string; value: unknown }[],
    code: 'CONFIG_INVALID' | 'CONFIG_UNREADABLE' = 'CONFIG_INVALID',
  ) {
    super(code, message, { details: { issues } });
    this.issues = issues;
  }
}

/** Bytes or text that could not be turned into a valid record. */
export class DecodeError extends RankdistillError {
  override readonly name = 'DecodeError';
  constructor(
    message: string,
    options: {
      cause?: unknown;
      details?: Record<string, unknown>;
      code?: 'DECODE_FAILED' | 'VALIDATION_FAILED' | 'SCHEMA_ID_UNKNOWN';
    } = {},
  ) {
    super(options.code ?? 'DECODE_FAILED', message, options);
  }
}

/** Input the label generators cannot label (NaN scores, missing logits, ...). */
export class LabelInputError extends RankdistillError {
  override readonly name = 'LabelInputError';
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('LABEL_INPUT_INVALID', message, { details });
  }
}

/** True when `e` is a rankdistill error, optionally with the given code. */
export function isRankdistillError(e: unknown, code?: ErrorCode): e is RankdistillError {
  return e instanceof RankdistillError && (code === undefined || e.code === code);
}

/** Message of any thrown value, for logs and dead letters. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
