/**
 * Prometheus metrics of the labeling service (prom-client) and the HTTP endpoint serving them:
 * `/metrics` (text exposition) and `/health` (200 while consuming, 503 otherwise).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** What the HTTP endpoint scrapes: a prom-client Registry, or an aggregate over worker threads. */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

/** The labeler's metric set, on its own registry (so tests can run several services). */
export class LabelMetrics {
  readonly registry = new Registry();
  readonly recordsIn = new Counter({
    name: 'rankdistill_records_in_total',
    help: 'Input records consumed, by topic.',
    labelNames: ['topic'],
    registers: [this.registry],
  });
  readonly recordsOut = new Counter({
    name: 'rankdistill_records_out_total',
    help: 'Records produced (committed), by topic.',
    labelNames: ['topic'],
    registers: [this.registry],
  });
  readonly outcomes = new Counter({
    name: 'rankdistill_join_outcomes_total',
    help: 'Join outcomes: joined, unmatched, unmatched_dropped, orphan, late, duplicate, malformed, invalid, label_failed.',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly rankerPaths = new Counter({
    name: 'rankdistill_ranker_outputs_decoded_total',
    help: 'Ranker outputs by decoding path: columns (parsed in place, labels written as bytes) or generic (decoded to objects: the column parser refused them, e.g. non-ASCII ids or maps not in the canonical Avro form). Counted with Avro input only.',
    labelNames: ['path'],
    registers: [this.registry],
  });
  readonly deadLetters = new Counter({
    name: 'rankdistill_dead_letters_total',
    help: 'Dead letters written, by reason code.',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly deadLettersTruncated = new Counter({
    name: 'rankdistill_dead_letters_truncated_total',
    help: "Dead letters whose original value was too large to carry whole (kafka.deadLetterMaxBytes, the dead-letter topic's max.message.bytes): raw holds its first bytes, raw_size and raw_sha256 the whole value's.",
    registers: [this.registry],
  });
  readonly openRequests = new Gauge({
    name: 'rankdistill_join_state_entries',
    help: 'Entries in the join state (open requests and done markers; a marker counts until its block of markers expires), by partition.',
    labelNames: ['partition'],
    registers: [this.registry],
  });
  readonly watermarkLag = new Gauge({
    name: 'rankdistill_watermark_lag_ms',
    help: 'Wall clock minus the watermark of a partition, ms.',
    labelNames: ['partition'],
    registers: [this.registry],
  });
  readonly restoredRecords = new Counter({
    name: 'rankdistill_state_restored_records_total',
    help: 'Changelog records replayed into local stores (task assignment after a crash or a move).',
    registers: [this.registry],
  });
  readonly commitLatency = new Histogram({
    name: 'rankdistill_transaction_commit_seconds',
    help: 'Time to send and commit one Kafka transaction.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly batchRecords = new Histogram({
    name: 'rankdistill_transaction_input_records',
    help: 'Input records per committed transaction.',
    buckets: [1, 10, 100, 1000, 5000, 20000],
    registers: [this.registry],
  });
}

/** A running metrics endpoint. */
export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `/metrics` and `/health` on 127.0.0.1:`port` (0 = ephemeral).
 *
 * @example
 * const srv = await serveMetrics(metrics.registry, 0, () => service.healthy());
 * srv.port; // the bound port
 */
export async function serveMetrics(
  registry: MetricsSource,
  port: number,
  healthy: () => boolean,
  host = '127.0.0.1',
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.url === '/health') {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: ok ? 'consuming' : 'not consuming' }));
      return;
    }
    if (req.url === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        (e: unknown) => {
          res.writeHead(500);
          res.end(String(e));
        },
      );
      return;
    }
    res.writeHead(404);
    res.end('not found: try /metrics or /health\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    // Idle keep-alive connections (a scraper's) would hold close() and the process open.
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
