/**
 * The partition of a record's key as the producer chooses it: kafkajs' DefaultPartitioner (the
 * Java client's: murmur2 of the key bytes, made positive, modulo the partition count). The file
 * replay splits its input with it, so partition p of a file replay holds the records that a
 * producer writing the same file to P partitions would put into partition p.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** kafkajs' own murmur2 (the function its DefaultPartitioner applies to a key). */
const murmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (
  key: Buffer | string,
) => number;

/**
 * Partition of `key` among `partitions`.
 *
 * @example
 * partitionOfKey(Buffer.from('user-17'), 4); // same as kafkajs' DefaultPartitioner
 */
export function partitionOfKey(key: Buffer, partitions: number): number {
  if (partitions === 1) return 0;
  return (murmur2(key) & 0x7fffffff) % partitions;
}
