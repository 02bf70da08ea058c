package rankdistill.bench;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams reference labeler of bench:label: joins ranker-outputs and impressions and
 * emits PointwiseLabels, exactly once, as `rankdistill label` with pointwise labels only.
 *
 * <p>One JVM serves several runs, so the bench can measure it cold (the first run of a fresh JVM)
 * and warm (later runs, after the JIT compiled the hot paths). It reads commands on stdin, one a
 * line, and answers on stdout:
 *
 * <pre>
 * start key=value ...   -> "started" once the instance is RUNNING (keys: see {@link #start})
 * stop                  -> closes the instance, then "stopped {counts as JSON}"
 * exit
 * </pre>
 */
public final class LabelJob {
  static final String PENDING_STORE = "pending";
  static final String EXPIRY_STORE = "expiry";
  static final String LABELS_SINK = "labels";
  static final String DEAD_LETTER_SINK = "dead-letters";
  static volatile String impressionTopic = "";

  /**
   * The event time of a record is its payload's ts (Avro: after request_id and user_id), as the
   * labeler's; stream time, the watermark and STREAM_TIME punctuation then run on event time. A
   * record whose ts cannot be read keeps the partition's time and is dead-lettered as malformed
   * by the processor.
   */
  public static final class EventTime implements TimestampExtractor {
    @Override
    public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
      try {
        return Codec.eventTime((byte[]) record.value());
      } catch (RuntimeException e) {
        return Math.max(partitionTime, 0);
      }
    }
  }

  static Topology topology(Map<String, String> a) {
    String ranker = a.get("ranker");
    impressionTopic = a.get("impressions");
    long window = Long.parseLong(a.getOrDefault("window", "600000"));
    long lateness = Long.parseLong(a.getOrDefault("lateness", "30000"));
    long punctuate = Long.parseLong(a.getOrDefault("punctuate", "1000"));
    Topology t = new Topology();
    t.addSource("ranker-outputs", new ByteArrayDeserializer(), new ByteArrayDeserializer(), ranker);
    t.addSource("impressions", new ByteArrayDeserializer(), new ByteArrayDeserializer(), impressionTopic);
    t.addProcessor("join", () -> new JoinProcessor(ranker, window, lateness, punctuate), "ranker-outputs", "impressions");
    // Persistent (RocksDB), changelogged (the default), behind the record cache.
    t.addStateStore(
        Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(PENDING_STORE), Serdes.Bytes(), Serdes.ByteArray())
            .withCachingEnabled(),
        "join");
    t.addStateStore(
        Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(EXPIRY_STORE), Serdes.Bytes(), Serdes.ByteArray())
            .withCachingEnabled(),
        "join");
    t.addSink(LABELS_SINK, a.get("pointwise"), new ByteArraySerializer(), new ByteArraySerializer(), "join");
    t.addSink(DEAD_LETTER_SINK, a.get("deadletter"), new ByteArraySerializer(), new ByteArraySerializer(), "join");
    return t;
  }

  static Properties props(Map<String, String> a) {
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, a.get("app"));
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("brokers"));
    p.put(StreamsConfig.STATE_DIR_CONFIG, a.get("state"));
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, a.getOrDefault("threads", "1"));
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    // 100 ms is already the exactly-once default; the labeler's commitIntervalMs is 100 too.
    p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, a.getOrDefault("commit", "100"));
    // The record cache (on by default, 10 MiB per instance): said here so that the job's tuning
    // reads in one place.
    p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, Long.parseLong(a.getOrDefault("cache", String.valueOf(10L << 20))));
    p.put(StreamsConfig.DEFAULT_TIMESTAMP_EXTRACTOR_CLASS_CONFIG, EventTime.class);
    p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
    p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
    // Producer batching: labels are 1-10 KiB each, and a transaction commits every 100 ms.
    p.put(StreamsConfig.producerPrefix(ProducerConfig.BATCH_SIZE_CONFIG), 512 * 1024);
    p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 10);
    p.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), "none");
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_POLL_RECORDS_CONFIG), 10_000);
    // Larger fetches and buffers, so a task's ranker-outputs partition (records 10× the size of
    // impressions) runs dry less often: a task waits for it to keep timestamp order (below).
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG), 8 << 20);
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.FETCH_MAX_BYTES_CONFIG), 64 << 20);
    p.put("buffered.records.per.partition", 20_000);
    // A task waiting for a partition's data polls for up to poll.ms (100 by default) before it
    // looks again.
    p.put(StreamsConfig.POLL_MS_CONFIG, Long.parseLong(a.getOrDefault("pollms", "5")));
    p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    // 0 (the default): a task whose partition ran dry waits for its next fetch, so records are
    // taken in timestamp order. -1 processes whatever is buffered: 1,567 requests/s against
    // 177-459 with 0 (20k requests, 20 candidates, cold JVM, this loaded machine), but the small
    // impressions ran ahead of the ranker outputs by more than window + lateness and it labelled
    // 20,962 of 60,000 requests (the rest late). The labeler joins them all, so 0 it is.
    p.put(StreamsConfig.MAX_TASK_IDLE_MS_CONFIG, Long.parseLong(a.getOrDefault("idle", "0")));
    return p;
  }

  private static Map<String, String> parse(String[] words, int from) {
    Map<String, String> a = new HashMap<>();
    for (int i = from; i < words.length; i++) {
      int eq = words[i].indexOf('=');
      if (eq > 0) a.put(words[i].substring(0, eq), words[i].substring(eq + 1));
    }
    return a;
  }

  private static String counts() {
    return String.format(
        "{\"joined\":%d,\"unmatched\":%d,\"orphans\":%d,\"late\":%d,\"duplicates\":%d,\"malformed\":%d}",
        JoinProcessor.JOINED.get(), JoinProcessor.UNMATCHED.get(), JoinProcessor.ORPHANS.get(),
        JoinProcessor.LATE.get(), JoinProcessor.DUPLICATES.get(), JoinProcessor.MALFORMED.get());
  }

  private static void reset() {
    JoinProcessor.JOINED.set(0);
    JoinProcessor.UNMATCHED.set(0);
    JoinProcessor.ORPHANS.set(0);
    JoinProcessor.LATE.set(0);
    JoinProcessor.DUPLICATES.set(0);
    JoinProcessor.MALFORMED.set(0);
  }

  public static void main(String[] args) throws Exception {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    KafkaStreams streams = null;
    for (String line; (line = in.readLine()) != null; ) {
      String[] w = line.trim().split("\\s+");
      switch (w[0]) {
        case "start" -> {
          if (streams != null) throw new IllegalStateException("start while an instance runs");
          reset();
          Map<String, String> a = parse(w, 1);
          KafkaStreams s = new KafkaStreams(topology(a), props(a));
          CountDownLatch running = new CountDownLatch(1);
          s.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) running.countDown();
          });
          s.setUncaughtExceptionHandler(e -> {
            System.err.println("kstreams-labeler: stream thread failed: " + e);
            e.printStackTrace();
            Runtime.getRuntime().halt(3);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
          });
          s.start();
          if (!running.await(120, TimeUnit.SECONDS)) {
            System.err.println("kstreams-labeler: not RUNNING after 120 s (state " + s.state() + ")");
            Runtime.getRuntime().halt(4);
          }
          streams = s;
          System.out.println("started");
        }
        case "stop" -> {
          if (streams != null) {
            // Which tasks each stream thread ran (bench:label's input has 4 partitions, so each of
            // 2 threads should own 2 tasks, as the labeler's threads do): one line per thread.
            for (var t : streams.metadataForLocalThreads())
              System.err.println("kstreams-labeler: " + t.threadName().replaceAll(".*-(StreamThread-\\d+)$", "$1")
                  + " active tasks " + t.activeTasks().stream().map(x -> x.taskId().toString()).sorted().toList());
            streams.close(Duration.ofSeconds(60));
            streams.cleanUp();
            streams = null;
          }
          System.out.println("stopped " + counts());
        }
        case "exit" -> {
          if (streams != null) streams.close(Duration.ofSeconds(60));
          System.out.println("bye");
          return;
        }
        default -> {
          if (!w[0].isEmpty()) System.err.println("kstreams-labeler: unknown command " + w[0]);
        }
      }
      System.out.flush();
    }
    if (streams != null) streams.close(Duration.ofSeconds(60));
  }
}
