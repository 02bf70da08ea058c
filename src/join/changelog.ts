/**
 * A {@link JoinStateStore} decorator that records every mutation of a batch, so the transport can
 * write them to the changelog topic in the same Kafka transaction as the batch's outputs and
 * offsets (Kafka Streams' `ChangeLoggingKeyValueBytesStore`). Within a batch only the last write
 * of a key is kept: the changelog is compacted anyway, and replaying the last write is enough.
 */
import { encodeEntry, encodeStreamTime, STREAM_TIME_KEY } from './entry-codec.ts';
import { ForwardingStore } from './forwarding-store.ts';
import type { StateEntry } from './types.ts';

/** One changelog record: key and entry bytes, or null for a tombstone. */
export interface ChangelogRecord {
  key: string;
  value: Buffer | null;
}

/**
 * @example
 * const logged = new ChangeRecordingStore(new MemoryJoinStore());
 * logged.put('d:r1', { kind: 'joined', ts: 1, expiresAt: 11 });
 * logged.drainChanges(); // [{ key: 'd:r1', value: <18 bytes> }]
 */
export class ChangeRecordingStore extends ForwardingStore {
  /**
   * Last write per key: the entry (encoded only when drained: most pending records are joined and
   * deleted within their batch and never need their bytes), null for a tombstone, a number for
   * the stream time.
   */
  #changes = new Map<string, StateEntry | null>();
  /** Stream time set in this batch (written last at the drain: one record per batch). */
  #streamTime: number | null = null;
  /** Keys absent from the state before this batch and put in it. */
  #fresh = new Set<string>();

  override put(key: string, entry: StateEntry, isNew = false): void {
    this.inner.put(key, entry, isNew);
    if (isNew && !this.#changes.has(key)) this.#fresh.add(key);
    this.#changes.delete(key);
    this.#changes.set(key, entry);
  }
  override delete(key: string): void {
    this.inner.delete(key);
    this.#changes.delete(key);
    // Created and deleted within this batch: the changelog never knew the key, so it needs
    // neither the put nor a tombstone (a request joined within one batch costs one record).
    if (this.#fresh.delete(key)) return;
    this.#changes.set(key, null);
  }
  override setStreamTime(ts: number): void {
    this.inner.setStreamTime(ts);
    this.#streamTime = ts;
  }

  /** Number of changes recorded since the last drain. */
  get pendingChanges(): number {
    return this.#changes.size + (this.#streamTime === null ? 0 : 1);
  }

  /** Returns the changes recorded since the last call (entries in last-write order, then the stream time) and forgets them. */
  drainChanges(): ChangelogRecord[] {
    const out: ChangelogRecord[] = [];
    for (const [key, v] of this.#changes) out.push({ key, value: v === null ? null : encodeEntry(v) });
    // Keys are independent, so the stream time's place among them does not matter for a restore.
    if (this.#streamTime !== null)
      out.push({ key: STREAM_TIME_KEY, value: encodeStreamTime(this.#streamTime) });
    this.#changes = new Map();
    this.#streamTime = null;
    this.#fresh = new Set();
    return out;
  }

  /** Forgets recorded changes (the batch was rolled back). */
  discardChanges(): void {
    this.#changes = new Map();
    this.#streamTime = null;
    this.#fresh = new Set();
  }
}
