package rankdistill.examples;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.File;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import org.apache.avro.Schema;
import org.apache.avro.file.DataFileReader;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificDatumReader;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import rankdistill.v1.ListwiseLabels;
import rankdistill.v1.PairwiseLabels;
import rankdistill.v1.PointwiseLabels;

/**
 * Reads rankdistill's label topics (or label files) as batches of Avro specific records
 * ({@link PointwiseLabels}, {@link PairwiseLabels}, {@link ListwiseLabels}, generated from
 * schemas/*.avsc), with the semantics of the TypeScript client (docs/CLIENT.md):
 *
 * <ul>
 *   <li>isolation read_committed: labels of aborted labeler transactions are never seen;
 *   <li>commit after the step: {@link #nextBatch} first commits the offsets of the batch it
 *       returned before, so a crash re-delivers the batch in hand (at-least-once); dedupe on the
 *       label's {@code id} (request_id:kind, stable across replays) if a label must not count twice.
 * </ul>
 *
 * <pre>{@code
 * try (var reader = LabelReader.kafka("127.0.0.1:9092", "my-trainer", "labels.pairwise",
 *     PairwiseLabels.class, Framing.AVRO, null, 256)) {
 *   for (;;) {
 *     for (var l : reader.nextBatch(Duration.ofSeconds(1))) trainStep(l.value().getPairs());
 *   }
 * }
 * }</pre>
 *
 * <p>Framings (the labeler's {@code kafka.outputFormat}): {@code AVRO}, the value is plain Avro
 * binary of our schema; {@code CONFLUENT}, byte 0 + 4-byte big-endian schema id + Avro binary,
 * the writer schema fetched from the registry and resolved against ours.
 */
public final class LabelReader<T extends SpecificRecord> implements AutoCloseable {
  public enum Framing { AVRO, CONFLUENT }

  /** One label and where it was read (partition -1 and the record index for files). */
  public record Label<T>(T value, String topic, int partition, long offset) {}

  private final KafkaConsumer<byte[], byte[]> consumer;
  private final Class<T> type;
  private final Schema schema;
  private final Framing framing;
  private final SchemaRegistry registry;
  private final Map<TopicPartition, OffsetAndMetadata> toCommit = new HashMap<>();
  private BinaryDecoder decoder;
  private boolean closed;

  private LabelReader(KafkaConsumer<byte[], byte[]> consumer, Class<T> type, Framing framing, String registryUrl) {
    this.consumer = consumer;
    this.type = type;
    this.schema = SpecificData.get().getSchema(type);
    this.framing = framing;
    if (framing == Framing.CONFLUENT && registryUrl == null)
      throw new IllegalArgumentException("the Confluent framing needs a schema registry URL");
    this.registry = registryUrl == null ? null : new SchemaRegistry(registryUrl);
  }

  /**
   * Subscribes {@code groupId} to {@code topic}; a group without committed offsets starts at the
   * beginning. {@code registryUrl} may be null for {@code Framing.AVRO}; batches hold up to
   * {@code batchSize} labels.
   */
  public static <T extends SpecificRecord> LabelReader<T> kafka(String brokers, String groupId, String topic,
      Class<T> type, Framing framing, String registryUrl, int batchSize) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    p.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
    p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, Integer.toString(batchSize));
    var consumer = new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    consumer.subscribe(List.of(topic));
    return new LabelReader<>(consumer, type, framing, registryUrl);
  }

  /**
   * Commits the previous batch (it was processed), then polls the next one: up to
   * {@code max.poll.records} labels, possibly none. Throws {@link IllegalStateException} naming
   * topic/partition/offset on an undecodable label, without committing it.
   */
  public List<Label<T>> nextBatch(Duration timeout) {
    if (!toCommit.isEmpty()) {
      consumer.commitSync(toCommit);
      toCommit.clear();
    }
    List<Label<T>> batch = new ArrayList<>();
    for (ConsumerRecord<byte[], byte[]> r : consumer.poll(timeout)) {
      try {
        batch.add(new Label<>(decode(r.value()), r.topic(), r.partition(), r.offset()));
      } catch (IOException | RuntimeException e) {
        toCommit.clear();
        throw new IllegalStateException("undecodable " + schema.getName() + " at topic " + r.topic()
            + " partition " + r.partition() + " offset " + r.offset() + ": " + e.getMessage(), e);
      }
      toCommit.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
    }
    return batch;
  }

  /** True once every assigned partition is read to its end (its last stable offset). */
  public boolean atEnd() {
    Set<TopicPartition> assigned = consumer.assignment();
    if (assigned.isEmpty()) return false;
    Map<TopicPartition, Long> ends = consumer.endOffsets(assigned);
    return assigned.stream().allMatch(tp -> consumer.position(tp) >= ends.get(tp));
  }

  /** Commits the batch in hand, then leaves the group. */
  public void commitAndClose() {
    if (!toCommit.isEmpty()) consumer.commitSync(toCommit);
    toCommit.clear();
    close();
  }

  /** Leaves the group WITHOUT committing the batch in hand (it is re-delivered). */
  @Override
  public void close() {
    if (closed) return;
    closed = true;
    consumer.close();
  }

  private T decode(byte[] value) throws IOException {
    int start = 0;
    Schema writer = schema;
    if (framing == Framing.CONFLUENT) {
      if (value.length < 5 || value[0] != 0)
        throw new IOException("expected the Confluent framing (magic byte 0 and a schema id)");
      writer = registry.schemaById(ByteBuffer.wrap(value, 1, 4).getInt());
      start = 5;
    }
    decoder = DecoderFactory.get().binaryDecoder(value, start, value.length - start, decoder);
    T record = new SpecificDatumReader<T>(writer, schema).read(null, decoder);
    if (!decoder.isEnd()) throw new IOException("trailing bytes after the record (wrong schema or framing)");
    return record;
  }

  /** Streams the labels of an Avro container file (label/replay --out DIR --format avro) in batches. */
  public static <T extends SpecificRecord> void readFile(
      File file, Class<T> type, int batchSize, Consumer<List<Label<T>>> step) throws IOException {
    try (var in = new DataFileReader<>(file, new SpecificDatumReader<>(type))) {
      List<Label<T>> batch = new ArrayList<>();
      long n = 0;
      while (in.hasNext()) {
        batch.add(new Label<>(in.next(), file.getPath(), -1, n++));
        if (batch.size() == batchSize) {
          step.accept(batch);
          batch = new ArrayList<>();
        }
      }
      if (!batch.isEmpty()) step.accept(batch);
    }
  }

  /** Writer schemas by id from a Confluent-compatible registry, cached (ids never change meaning). */
  static final class SchemaRegistry {
    private final String url;
    private final HttpClient http = HttpClient.newHttpClient();
    private final Map<Integer, Schema> cache = new ConcurrentHashMap<>();

    SchemaRegistry(String url) {
      this.url = url.replaceAll("/+$", "");
    }

    Schema schemaById(int id) throws IOException {
      Schema s = cache.get(id);
      if (s != null) return s;
      HttpResponse<String> res;
      try {
        res = http.send(HttpRequest.newBuilder(URI.create(url + "/schemas/ids/" + id))
                .timeout(Duration.ofSeconds(10)).header("Accept", "application/json").build(),
            HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException("interrupted while fetching schema id " + id, e);
      }
      if (res.statusCode() != 200)
        throw new IOException("schema registry answered " + res.statusCode() + " for schema id " + id + ": " + res.body());
      JsonNode body = JSON.readTree(res.body());
      s = new Schema.Parser().parse(body.get("schema").asText());
      cache.put(id, s);
      return s;
    }
  }

  // ---- command line: print the labels as JSON lines (the project's tests compare them) ----

  private static final ObjectMapper JSON = new ObjectMapper();

  /** A specific record as plain JSON values: strings, numbers, maps, lists; timestamps as epoch ms. */
  static Object plain(Object v) {
    if (v instanceof SpecificRecord r) {
      Map<String, Object> m = new LinkedHashMap<>();
      for (Schema.Field f : r.getSchema().getFields()) m.put(f.name(), plain(r.get(f.pos())));
      return m;
    }
    if (v instanceof Instant t) return t.toEpochMilli();
    if (v instanceof CharSequence s) return s.toString();
    if (v instanceof Map<?, ?> map) {
      Map<String, Object> m = new LinkedHashMap<>();
      map.forEach((k, x) -> m.put(k.toString(), plain(x)));
      return m;
    }
    if (v instanceof List<?> list) return list.stream().map(LabelReader::plain).toList();
    return v;
  }

  private static void print(PrintStream out, String kind, List<? extends Label<? extends SpecificRecord>> batch) {
    for (var l : batch) {
      SpecificRecord r = l.value();
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("id", r.get(r.getSchema().getField("id").pos()).toString());
      m.put("kind", kind);
      m.put("topic", l.topic());
      m.put("partition", l.partition());
      m.put("offset", l.offset());
      m.put("record", plain(r));
      try {
        out.println(JSON.writeValueAsString(m));
      } catch (IOException e) {
        throw new IllegalStateException(e);
      }
    }
  }

  private static Class<? extends SpecificRecord> typeOf(String kind) {
    return switch (kind) {
      case "pointwise" -> PointwiseLabels.class;
      case "pairwise" -> PairwiseLabels.class;
      case "listwise" -> ListwiseLabels.class;
      default -> throw new IllegalArgumentException("kind must be pointwise, pairwise or listwise, found " + kind);
    };
  }

  /**
   * {@code <kind> (--brokers B [--topic T] [--group G] [--format avro|confluent]
   * [--schema-registry-url U] [--follow] | --file PATH) [--batch-size N]}: prints every label as a
   * JSON line; from Kafka it stops at the end of the topic unless {@code --follow}.
   */
  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      System.err.println("usage: <kind> (--brokers B [--topic T] [--group G] [--format avro|confluent] "
          + "[--schema-registry-url U] [--follow] | --file PATH) [--batch-size N]");
      System.exit(2);
    }
    String kind = args[0];
    Map<String, String> o = new HashMap<>();
    for (int i = 1; i < args.length; i++) {
      if (args[i].equals("--follow")) o.put("follow", "1");
      else if (args[i].startsWith("--") && i + 1 < args.length) o.put(args[i].substring(2), args[++i]);
      else throw new IllegalArgumentException("unexpected argument " + args[i]);
    }
    Class<? extends SpecificRecord> type = typeOf(kind);
    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    int batchSize = Integer.parseInt(o.getOrDefault("batch-size", "256"));
    if (o.containsKey("file")) {
      File f = new File(o.get("file"));
      if (f.isDirectory()) f = new File(f, "labels." + kind + ".avro");
      readFile(f, type, batchSize, batch -> print(out, kind, batch));
      out.flush();
      return;
    }
    String brokers = o.get("brokers");
    if (brokers == null) throw new IllegalArgumentException("--brokers or --file is required");
    Framing framing = Framing.valueOf(o.getOrDefault("format", "avro").toUpperCase());
    String topic = o.getOrDefault("topic", "labels." + kind);
    try (var reader = kafka(brokers, o.getOrDefault("group", "rankdistill-java-reader"), topic, type, framing,
        o.get("schema-registry-url"), batchSize)) {
      for (;;) {
        var batch = reader.nextBatch(Duration.ofMillis(500));
        if (batch.isEmpty()) {
          if (!o.containsKey("follow") && reader.atEnd()) break;
          continue;
        }
        print(out, kind, batch); // the training step goes here
        out.flush();
      }
      reader.commitAndClose();
    }
    out.flush();
  }
}
