/**
 * The partition of a record's key as the producer chooses it: kafkajs' DefaultPartitioner (the
 * Java client's: murmur2 of the key bytes, made positive, modulo the partition count). The file
 * replay splits its input with it, so partition p of a file replay holds the records that a
 * producer writing the same file to P partitions would put into partition p.
 */

const M = 0x5bd1e995;

/**
 * murmur2 of `data` as kafkajs computes it (its result's low 32 bits, signed), in 32-bit integer
 * arithmetic: kafkajs does it with 64-bit `Long` objects, and every thread of a file replay
 * hashes every record's key (~5% of a 2-thread replay's CPU). Only low 32 bits ever reach the
 * result, so Math.imul gives the same value (test/replay/partitioning.test.ts checks it against
 * kafkajs' own function on arbitrary bytes).
 */
export function murmur2(data: Uint8Array): number {
  const len = data.length;
  let h = 0x9747b28c ^ len;
  const n4 = len & ~3;
  for (let i = 0; i < n4; i += 4) {
    let k =
      (data[i] as number) |
      ((data[i + 1] as number) << 8) |
      ((data[i + 2] as number) << 16) |
      ((data[i + 3] as number) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = len & 3;
  if (rest === 3) h ^= (data[n4 + 2] as number) << 16;
  if (rest >= 2) h ^= (data[n4 + 1] as number) << 8;
  if (rest >= 1) h = Math.imul(h ^ (data[n4] as number), M);
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/**
 * Partition of `key` among `partitions`.
 *
 * @example
 * partitionOfKey(Buffer.from('user-17'), 4); // same as kafkajs' DefaultPartitioner
 */
export function partitionOfKey(key: Uint8Array, partitions: number): number {
  if (partitions === 1) return 0;
  return (murmur2(key) & 0x7fffffff) % partitions;
}
