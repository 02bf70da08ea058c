package rankdistill.bench;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.processor.api.RecordMetadata;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The event-time join of RankerOutput and Impression by request_id with the semantics of
 * src/join/operator.ts (DESIGN.md "Join semantics"), as one Processor API node over the two
 * co-partitioned input topics (one task per partition pair, no repartition):
 *
 * <ul>
 *   <li>watermark = the task's stream time − allowed lateness; a record whose own window closed
 *       (ts + W &lt; watermark) is LATE (dead letter);
 *   <li>partners within W of each other join: labels out now, a done marker 'joined' until
 *       max(ts) + W makes later copies duplicates;
 *   <li>a lone entry expires once the watermark passes ts + W: a lone RankerOutput is emitted
 *       unmatched (done marker 'unmatched' until ts + 2W, an impression for it within W is then
 *       LATE), a lone Impression is an ORPHAN (dead letter); a second pending copy is a duplicate.
 * </ul>
 *
 * <p>State: {@code pending} (kind byte + request_id → entry) and {@code expiry} (big-endian
 * expiresAt + entry key → empty), both persistent RocksDB stores with changelogs and the record
 * cache, as Kafka Streams' own outer join keeps a timestamp-ordered store of lone records
 * (KStreamKStreamJoin's "shared outer join store"). Expiry runs in a stream-time punctuation (a
 * range scan of {@code expiry} up to the watermark), and before a record as soon as the
 * watermark passes the earliest expiresAt (kept in memory), so that every decision is the one the
 * labeler makes, which sweeps before every record. Index entries are not deleted when their entry
 * goes (a join): the sweep skips them as stale, which saves a write per request.
 */
final class JoinProcessor implements Processor<byte[], byte[], byte[], byte[]> {
  static final AtomicLong JOINED = new AtomicLong();
  static final AtomicLong UNMATCHED = new AtomicLong();
  static final AtomicLong ORPHANS = new AtomicLong();
  static final AtomicLong LATE = new AtomicLong();
  static final AtomicLong DUPLICATES = new AtomicLong();
  static final AtomicLong MALFORMED = new AtomicLong();

  private static final byte RANKER = 'r', IMPRESSION = 'i', DONE = 'd';
  private static final byte PENDING = 'P', JOINED_MARK = 'J', UNMATCHED_MARK = 'U';

  private final String rankerTopic;
  private final long windowMs;
  private final long latenessMs;
  private final long punctuateMs;
  private ProcessorContext<byte[], byte[]> ctx;
  private KeyValueStore<Bytes, byte[]> pending;
  private KeyValueStore<Bytes, byte[]> expiry;
  private final Codec.Ranker ranker = new Codec.Ranker();
  /** The sweep's own: a sweep can run in the middle of process(), which holds {@link #ranker}. */
  private final Codec.Ranker expired = new Codec.Ranker();
  private final Codec.Impression impression = new Codec.Impression();
  private final Codec.Out out = new Codec.Out();
  private byte[] clicked = new byte[256];
  private long streamTime = Long.MIN_VALUE;
  /**
   * A lower bound of the earliest expiresAt in {@code expiry}, kept in memory (unknown after a
   * restart: the first record sweeps): a sweep runs as soon as the watermark passes it, so lone
   * records expire at the same record as in the labeler, which sweeps before every record.
   */
  private long nextExpiry = Long.MIN_VALUE;
  /**
   * Every index entry below this was swept (deleted). Scans start here rather than at the start of
   * the key space: RocksDB would step over the tombstones of every entry swept since its last
   * compaction on each seek from the start (unknown after a restart, so the first scan does).
   */
  private long sweptBelow = Long.MIN_VALUE;

  JoinProcessor(String rankerTopic, long windowMs, long latenessMs, long punctuateMs) {
    this.rankerTopic = rankerTopic;
    this.windowMs = windowMs;
    this.latenessMs = latenessMs;
    this.punctuateMs = punctuateMs;
  }

  @Override
  public void init(ProcessorContext<byte[], byte[]> context) {
    ctx = context;
    pending = context.getStateStore(LabelJob.PENDING_STORE);
    expiry = context.getStateStore(LabelJob.EXPIRY_STORE);
    context.schedule(
        Duration.ofMillis(punctuateMs),
        PunctuationType.STREAM_TIME,
        t -> {
          long wm = Math.max(t, context.currentStreamTimeMs()) - latenessMs;
          if (wm > nextExpiry) sweep(wm);
        });
  }

  @Override
  public void process(Record<byte[], byte[]> rec) {
    RecordMetadata meta = ctx.recordMetadata().orElseThrow();
    boolean isRanker = meta.topic().equals(rankerTopic);
    byte[] raw = rec.value();
    long ts;
    byte[] rid;
    try {
      if (raw == null) throw new Codec.BadRecord("null value");
      Codec.In in = new Codec.In(raw);
      int s = in.skipString();
      rid = java.util.Arrays.copyOfRange(raw, s, in.p);
      in.skipString();
      ts = in.readLong();
      // The labeler decodes a record in full before the join, so a malformed one never joins.
      if (isRanker) Codec.parseRanker(raw, ranker);
      else Codec.parseImpression(raw, impression);
    } catch (Codec.BadRecord e) {
      MALFORMED.incrementAndGet();
      deadLetter(meta, rec.key(), raw == null ? new byte[0] : raw, "MALFORMED", e.getMessage(), null);
      return;
    }
    streamTime = Math.max(Math.max(streamTime, ctx.currentStreamTimeMs()), ts);
    long wm = streamTime - latenessMs;
    long w = windowMs;
    if (wm > nextExpiry) sweep(wm);
    if (ts + w < wm) {
      LATE.incrementAndGet();
      deadLetter(meta, rec.key(), raw, "LATE", "window closed before it arrived", rid);
      return;
    }
    Bytes doneKey = key(DONE, rid);
    byte[] done = lookup(doneKey, wm);
    if (done != null) {
      if (done[0] == JOINED_MARK || isRanker) {
        DUPLICATES.incrementAndGet();
        return;
      }
      if (Math.abs(ts - tsOf(done)) <= w) {
        LATE.incrementAndGet();
        deadLetter(meta, rec.key(), raw, "LATE", "after the window of its ranker output closed", rid);
        return;
      }
    }
    Bytes own = key(isRanker ? RANKER : IMPRESSION, rid);
    if (lookup(own, wm) != null) {
      DUPLICATES.incrementAndGet();
      return;
    }
    Bytes otherKey = key(isRanker ? IMPRESSION : RANKER, rid);
    byte[] other = lookup(otherKey, wm);
    if (other != null && Math.abs(ts - tsOf(other)) <= w) {
      pending.delete(otherKey);
      long joinedTs = Math.max(ts, tsOf(other));
      put(doneKey, marker(JOINED_MARK, joinedTs, joinedTs + w));
      byte[] otherRaw = rawOf(other);
      if (isRanker) Codec.parseImpression(otherRaw, impression);
      else Codec.parseRanker(otherRaw, ranker);
      emit(ranker, joinedTs, true);
      JOINED.incrementAndGet();
      return;
    }
    put(own, pendingEntry(ts, ts + w, meta, rec.key(), raw));
  }

  /** The entry under key; an entry whose window closed before wm is swept first (as the labeler's per-record sweep would have), then read again. */
  private byte[] lookup(Bytes key, long wm) {
    byte[] v = pending.get(key);
    if (v != null && expiresOf(v) < wm) {
      sweep(wm);
      v = pending.get(key);
    }
    return v;
  }

  /** Expires every entry whose window closed before wm, in (expiresAt, key) order. */
  private void sweep(long wm) {
    if (wm == Long.MIN_VALUE) return;
    for (;;) {
      List<KeyValue<Bytes, byte[]>> batch = new ArrayList<>();
      try (KeyValueIterator<Bytes, byte[]> it = expiry.range(indexKey(sweptBelow, null), indexKey(wm, null))) {
        while (it.hasNext() && batch.size() < 512) batch.add(it.next());
      }
      if (batch.isEmpty()) {
        sweepDone(wm);
        return;
      }
      nextExpiry = Long.MAX_VALUE; // put() below lowers it
      for (KeyValue<Bytes, byte[]> kv : batch) {
        byte[] ik = kv.key.get();
        expiry.delete(kv.key);
        long exp = ByteBuffer.wrap(ik, 0, 8).getLong() ^ Long.MIN_VALUE;
        Bytes key = Bytes.wrap(java.util.Arrays.copyOfRange(ik, 8, ik.length));
        byte[] v = pending.get(key);
        if (v == null || expiresOf(v) != exp) continue; // stale: the entry went (a join) or was replaced
        pending.delete(key);
        byte side = ik[8];
        if (v[0] != PENDING) continue; // a done marker's time is up
        if (side == IMPRESSION) {
          ORPHANS.incrementAndGet();
          deadLetterStored(v, "ORPHAN", "no ranker output arrived within the window of the impression", key);
          continue;
        }
        Codec.parseRanker(rawOf(v), expired);
        byte[] rid = java.util.Arrays.copyOfRange(ik, 9, ik.length);
        put(key(DONE, rid), marker(UNMATCHED_MARK, tsOf(v), tsOf(v) + 2 * windowMs));
        emit(expired, tsOf(v), false);
        UNMATCHED.incrementAndGet();
      }
      // A short batch was the whole range; unless a marker put above expires below wm, done.
      if (batch.size() < 512 && nextExpiry >= wm) {
        sweepDone(wm);
        return;
      }
    }
  }

  /**
   * After a sweep to wm: entries left, and new ones (a record before the watermark is late),
   * expire at or after wm, so wm is the lower bound. Not read from the index: a range scan over
   * [wm, ∞) copies every cached key above wm (Kafka Streams' ThreadCache range iterator takes a
   * snapshot of the cache's key subset), an O(state) cost per sweep that made the job 3× dearer
   * per request at 1M requests than at 20k.
   */
  private void sweepDone(long wm) {
    sweptBelow = Math.max(sweptBelow, wm);
    nextExpiry = wm;
  }

  /** PointwiseLabels of the parsed ranker (and, when matched, the parsed impression). */
  private void emit(Codec.Ranker ranker, long ts, boolean matched) {
    byte[] clickedByItem = null;
    if (matched) {
      int n = ranker.n;
      if (clicked.length < n) clicked = new byte[Math.max(n, 2 * clicked.length)];
      java.util.Arrays.fill(clicked, 0, n, (byte) -1);
      // Shown items (~10) against the candidates: a byte comparison of ids, no strings made.
      for (int j = 0; j < impression.m; j++) {
        int idx = candidateIndex(ranker, impression.b, impression.idS[j], impression.idE[j]);
        if (idx >= 0) clicked[idx] = (byte) (impression.clicked[j] ? 1 : 0);
      }
      clickedByItem = clicked;
    }
    byte[] value = Codec.pointwise(ranker, ts, clickedByItem, out);
    byte[] key = java.util.Arrays.copyOfRange(ranker.b, ranker.uidS, ranker.uidE);
    ctx.forward(new Record<>(key, value, ts), LabelJob.LABELS_SINK);
  }

  private static int candidateIndex(Codec.Ranker ranker, byte[] b, int s, int e) {
    int len = e - s;
    for (int i = 0; i < ranker.n; i++) {
      int cs = ranker.idS[i];
      if (ranker.idE[i] - cs == len && java.util.Arrays.equals(ranker.b, cs, cs + len, b, s, e)) return i;
    }
    return -1;
  }

  private void put(Bytes key, byte[] value) {
    pending.put(key, value);
    long exp = expiresOf(value);
    expiry.put(indexKey(exp, key.get()), EMPTY);
    if (exp < nextExpiry) nextExpiry = exp;
  }

  private static final byte[] EMPTY = new byte[0];

  private static Bytes key(byte kind, byte[] rid) {
    byte[] k = new byte[1 + rid.length];
    k[0] = kind;
    System.arraycopy(rid, 0, k, 1, rid.length);
    return Bytes.wrap(k);
  }

  /** expiresAt with its sign bit flipped, big-endian, so that byte order is numeric order. */
  private static Bytes indexKey(long expiresAt, byte[] key) {
    ByteBuffer b = ByteBuffer.allocate(8 + (key == null ? 0 : key.length));
    b.putLong(expiresAt ^ Long.MIN_VALUE);
    if (key != null) b.put(key);
    return Bytes.wrap(b.array());
  }

  private static byte[] marker(byte kind, long ts, long expiresAt) {
    return ByteBuffer.allocate(17).put(kind).putLong(ts).putLong(expiresAt).array();
  }

  /** [P][ts][expiresAt][partition][offset][key length (-1 null)][key][raw]. */
  private static byte[] pendingEntry(long ts, long expiresAt, RecordMetadata meta, byte[] key, byte[] raw) {
    int kl = key == null ? 0 : key.length;
    ByteBuffer b = ByteBuffer.allocate(17 + 4 + 8 + 4 + kl + raw.length);
    b.put(PENDING).putLong(ts).putLong(expiresAt).putInt(meta.partition()).putLong(meta.offset());
    b.putInt(key == null ? -1 : key.length);
    if (key != null) b.put(key);
    b.put(raw);
    return b.array();
  }

  private static long tsOf(byte[] v) {
    return ByteBuffer.wrap(v, 1, 8).getLong();
  }

  private static long expiresOf(byte[] v) {
    return ByteBuffer.wrap(v, 9, 8).getLong();
  }

  private static byte[] rawOf(byte[] v) {
    int kl = ByteBuffer.wrap(v, 29, 4).getInt();
    return java.util.Arrays.copyOfRange(v, 33 + Math.max(kl, 0), v.length);
  }

  private void deadLetterStored(byte[] v, String code, String reason, Bytes key) {
    ByteBuffer b = ByteBuffer.wrap(v);
    b.position(17);
    int partition = b.getInt();
    long offset = b.getLong();
    int kl = b.getInt();
    byte[] k = null;
    if (kl >= 0) {
      k = new byte[kl];
      b.get(k);
    }
    byte[] raw = rawOf(v);
    String rid = new String(key.get(), 1, key.get().length - 1, StandardCharsets.UTF_8);
    byte[] value =
        Codec.deadLetter(LabelJob.impressionTopic, partition, offset, k, raw, code, reason, rid, System.currentTimeMillis(), out);
    ctx.forward(new Record<>(k, value, ctx.currentStreamTimeMs()), LabelJob.DEAD_LETTER_SINK);
  }

  private void deadLetter(RecordMetadata meta, byte[] key, byte[] raw, String code, String reason, byte[] rid) {
    byte[] value =
        Codec.deadLetter(
            meta.topic(), meta.partition(), meta.offset(), key, raw, code, reason,
            rid == null ? null : new String(rid, StandardCharsets.UTF_8), System.currentTimeMillis(), out);
    ctx.forward(new Record<>(key, value, ctx.currentStreamTimeMs()), LabelJob.DEAD_LETTER_SINK);
  }
}
