/**
 * The label client for downstream trainers: {@link subscribeLabels} (Kafka, read_committed,
 * commit after processing) and {@link readLabelFiles} (NDJSON / Avro container label files).
 * See docs/CLIENT.md.
 */

export * from './files.ts';
export * from './subscribe.ts';
export * from './types.ts';
