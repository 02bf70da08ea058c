package rankdistill.bench;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * A hand-written Avro binary codec for the three records the job touches (schemas/*.avsc):
 * RankerOutput and Impression in, PointwiseLabels and DeadLetter out. The bench's input is plain
 * Avro binary, one record per Kafka message, no framing (kafka.inputFormat 'avro', see
 * src/contracts/codec.ts). Strings are kept as offsets into the input bytes and the optional maps
 * (context, item features) are copied to the output as the bytes they were read from, so a label
 * is written without building a String or a Map: what a Java engineer tuning this job would do
 * instead of GenericRecord.
 *
 * Avro binary: int and long are zig-zag varints, double is 8 bytes little-endian, a string is a
 * long length + UTF-8, a union is a long branch index + the branch, an array or map is a sequence
 * of blocks (long count, negative count followed by a long byte size) ended by a count of 0.
 */
final class Codec {
  private Codec() {}

  /** Thrown on bytes that are not a record of the expected schema. */
  static final class BadRecord extends RuntimeException {
    BadRecord(String m) {
      super(m, null, false, false);
    }
  }

  /** A reading position over one message. */
  static final class In {
    final byte[] b;
    int p;

    In(byte[] b) {
      this.b = b;
    }

    long readLong() {
      long n = 0;
      int shift = 0;
      for (;;) {
        if (p >= b.length) throw new BadRecord("truncated varint");
        int x = b[p++] & 0xff;
        n |= (long) (x & 0x7f) << shift;
        if ((x & 0x80) == 0) break;
        shift += 7;
        if (shift > 63) throw new BadRecord("varint too long");
      }
      return (n >>> 1) ^ -(n & 1);
    }

    int readInt() {
      long v = readLong();
      if (v != (int) v) throw new BadRecord("int out of range");
      return (int) v;
    }

    double readDouble() {
      if (p + 8 > b.length) throw new BadRecord("truncated double");
      long bits = 0;
      for (int i = 7; i >= 0; i--) bits = (bits << 8) | (b[p + i] & 0xff);
      p += 8;
      return Double.longBitsToDouble(bits);
    }

    boolean readBoolean() {
      if (p >= b.length) throw new BadRecord("truncated boolean");
      int v = b[p++];
      if (v != 0 && v != 1) throw new BadRecord("bad boolean");
      return v == 1;
    }

    /** Skips a string (or bytes); returns its start, its end is {@link #p}. */
    int skipString() {
      long len = readLong();
      if (len < 0 || p + len > b.length) throw new BadRecord("bad string length");
      int start = p;
      p += (int) len;
      return start;
    }

    String readString() {
      int s = skipString();
      return new String(b, s, p - s, StandardCharsets.UTF_8);
    }

    /** Skips ["null", map of double]. */
    void skipOptionalDoubleMap() {
      long branch = readLong();
      if (branch == 0) return;
      if (branch != 1) throw new BadRecord("bad union branch");
      for (;;) {
        long count = readLong();
        if (count == 0) return;
        if (count < 0) {
          long size = readLong();
          if (size < 0 || p + size > b.length) throw new BadRecord("bad block size");
          p += (int) size;
          continue;
        }
        for (long i = 0; i < count; i++) {
          skipString();
          p += 8;
        }
        if (p > b.length) throw new BadRecord("truncated map");
      }
    }
  }

  /** A RankerOutput as offsets into its message. */
  static final class Ranker {
    byte[] b;
    int ridS, ridE, uidS, uidE, mvS, mvE, ctxS, ctxE;
    long ts;
    int n;
    int[] idS = new int[256], idE = new int[256], featS = new int[256], featE = new int[256];
    double[] score = new double[256];

    void grow() {
      int m = idS.length * 2;
      idS = Arrays.copyOf(idS, m);
      idE = Arrays.copyOf(idE, m);
      featS = Arrays.copyOf(featS, m);
      featE = Arrays.copyOf(featE, m);
      score = Arrays.copyOf(score, m);
    }
  }

  static Ranker parseRanker(byte[] b, Ranker r) {
    In in = new In(b);
    r.b = b;
    r.ridS = in.skipString();
    r.ridE = in.p;
    r.uidS = in.skipString();
    r.uidE = in.p;
    r.ts = in.readLong();
    r.mvS = in.skipString();
    r.mvE = in.p;
    r.ctxS = in.p;
    in.skipOptionalDoubleMap();
    r.ctxE = in.p;
    int n = 0;
    for (;;) {
      long count = in.readLong();
      if (count == 0) break;
      if (count < 0) {
        in.readLong(); // block byte size: not needed, the items are read one by one
        count = -count;
      }
      for (long k = 0; k < count; k++) {
        if (n == r.idS.length) r.grow();
        r.idS[n] = in.skipString();
        r.idE[n] = in.p;
        r.score[n] = in.readDouble();
        in.skipOptionalDoubleMap(); // objectives: not used with the default teacher config
        r.featS[n] = in.p;
        in.skipOptionalDoubleMap();
        r.featE[n] = in.p;
        n++;
      }
    }
    if (in.p != b.length) throw new BadRecord((b.length - in.p) + " trailing bytes after the record");
    r.n = n;
    return r;
  }

  /** An Impression as offsets: the shown items' ids and clicks. */
  static final class Impression {
    byte[] b;
    long ts;
    int m;
    int[] idS = new int[64], idE = new int[64];
    boolean[] clicked = new boolean[64];
  }

  static Impression parseImpression(byte[] b, Impression im) {
    In in = new In(b);
    im.b = b;
    in.skipString(); // request_id
    in.skipString(); // user_id
    im.ts = in.readLong();
    int m = 0;
    for (;;) {
      long count = in.readLong();
      if (count == 0) break;
      if (count < 0) {
        in.readLong();
        count = -count;
      }
      for (long k = 0; k < count; k++) {
        if (m == im.idS.length) {
          im.idS = Arrays.copyOf(im.idS, 2 * m);
          im.idE = Arrays.copyOf(im.idE, 2 * m);
          im.clicked = Arrays.copyOf(im.clicked, 2 * m);
        }
        im.idS[m] = in.skipString();
        im.idE[m] = in.p;
        in.readInt(); // position: the ranker order is the label order by default
        im.clicked[m] = in.readBoolean();
        long dwell = in.readLong();
        if (dwell == 1) in.readLong();
        else if (dwell != 0) throw new BadRecord("bad union branch");
        long actions = in.readLong();
        if (actions == 1) {
          for (;;) {
            long c = in.readLong();
            if (c == 0) break;
            if (c < 0) {
              in.readLong();
              c = -c;
            }
            for (long j = 0; j < c; j++) in.skipString();
          }
        } else if (actions != 0) throw new BadRecord("bad union branch");
        m++;
      }
    }
    if (in.p != b.length) throw new BadRecord((b.length - in.p) + " trailing bytes after the record");
    im.m = m;
    return im;
  }

  /** The request_id and event time of either input, read without parsing the rest. */
  static String requestId(byte[] b) {
    return new In(b).readString();
  }

  static long eventTime(byte[] b) {
    In in = new In(b);
    in.skipString();
    in.skipString();
    return in.readLong();
  }

  /** A growable output buffer. */
  static final class Out {
    byte[] b = new byte[64 << 10];
    int p;

    void ensure(int n) {
      if (p + n > b.length) b = Arrays.copyOf(b, Math.max(b.length * 2, p + n));
    }

    void writeLong(long v) {
      ensure(10);
      long n = (v << 1) ^ (v >> 63);
      while ((n & ~0x7fL) != 0) {
        b[p++] = (byte) ((n & 0x7f) | 0x80);
        n >>>= 7;
      }
      b[p++] = (byte) n;
    }

    void writeDouble(double d) {
      ensure(8);
      long bits = Double.doubleToRawLongBits(d);
      for (int i = 0; i < 8; i++) b[p++] = (byte) (bits >>> (8 * i));
    }

    void writeBytes(byte[] src, int s, int e) {
      ensure(e - s);
      System.arraycopy(src, s, b, p, e - s);
      p += e - s;
    }

    /** A string (or bytes) held as src[s, e). */
    void writeString(byte[] src, int s, int e) {
      writeLong(e - s);
      writeBytes(src, s, e);
    }

    void writeString(String s) {
      byte[] u = s.getBytes(StandardCharsets.UTF_8);
      writeString(u, 0, u.length);
    }

    byte[] take() {
      byte[] r = Arrays.copyOf(b, p);
      p = 0;
      return r;
    }
  }

  private static final byte[] POINTWISE_SUFFIX = ":pointwise".getBytes(StandardCharsets.US_ASCII);

  /**
   * PointwiseLabels of a request with the labeler's defaults (src/labels/pointwise.ts,
   * src/config/schema.ts): teacher signal 'logits' with no objective fusion (logit = score), the
   * ranker's order, top K = 5 positives weighted reciprocally w = 1 + 1/rank, negatives 1, no soft
   * targets; clicked = the impression's click for shown candidates, null otherwise or unmatched.
   *
   * @param clickedByItem click per candidate (1, 0, or -1 not shown); null when unmatched
   */
  static byte[] pointwise(Ranker r, long ts, byte[] clickedByItem, Out out) {
    byte[] b = r.b;
    out.writeLong((r.ridE - r.ridS) + POINTWISE_SUFFIX.length); // id = request_id + ':pointwise'
    out.writeBytes(b, r.ridS, r.ridE);
    out.writeBytes(POINTWISE_SUFFIX, 0, POINTWISE_SUFFIX.length);
    out.writeString(b, r.ridS, r.ridE);
    out.writeString(b, r.uidS, r.uidE);
    out.writeLong(ts);
    out.writeString(b, r.mvS, r.mvE);
    out.ensure(1);
    out.b[out.p++] = (byte) (clickedByItem == null ? 0 : 1); // matched
    out.writeBytes(b, r.ctxS, r.ctxE); // ["null", map] exactly as read
    int n = r.n;
    if (n > 0) {
      out.writeLong(n);
      for (int i = 0; i < n; i++) {
        out.writeString(b, r.idS[i], r.idE[i]);
        out.writeLong(i + 1); // rank
        boolean positive = i < K;
        out.writeLong(positive ? 1 : 0); // label
        out.writeDouble(positive ? WEIGHTS[i] : 1.0); // weight
        out.writeLong(1); // teacher_logit: ["null", double] branch 1
        out.writeDouble(r.score[i]);
        out.writeLong(0); // soft_target: null (soft targets off)
        int c = clickedByItem == null ? -1 : clickedByItem[i];
        if (c < 0) out.writeLong(0);
        else {
          out.writeLong(1);
          out.ensure(1);
          out.b[out.p++] = (byte) c;
        }
        out.writeBytes(b, r.featS[i], r.featE[i]); // ["null", map] exactly as read
      }
    }
    out.writeLong(0);
    return out.take();
  }

  static final int K = 5;
  private static final double[] WEIGHTS = new double[K];

  static {
    for (int r = 1; r <= K; r++) WEIGHTS[r - 1] = 1 + 1.0 / r; // reciprocal, a = 1
  }

  /** A DeadLetter record (schemas/DeadLetter.avsc). */
  static byte[] deadLetter(
      String topic, int partition, long offset, byte[] key, byte[] raw, String code, String reason,
      String requestId, long time, Out out) {
    out.writeString(topic);
    out.writeLong(partition);
    out.writeLong(offset);
    if (key == null) out.writeLong(0);
    else {
      out.writeLong(1);
      out.writeString(key, 0, key.length);
    }
    out.writeString(raw, 0, raw.length);
    out.writeString(code);
    out.writeString(reason);
    if (requestId == null) out.writeLong(0);
    else {
      out.writeLong(1);
      out.writeString(requestId);
    }
    out.writeLong(time);
    return out.take();
  }
}
