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
    help: "Dead letters whose original value or key was too large to carry whole (kafka.deadLetterMaxBytes, the dead-letter topic's max.message.bytes): raw (key) holds its first bytes, raw_size and raw_sha256 (key_size, key_sha256) the whole value's (key's).",
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

/** What the trainer's gauge reports (src/train/gauge.ts LiveQuality), structurally. */
export interface LiveFigures {
  version: number;
  requests: number;
  recall_at_100_of_top10: number;
  ndcg_at_10: number;
  popular_recall_at_100_of_top10: number;
  popular_ndcg_at_10: number;
  window_recall_at_100_of_top10: number;
  window_ndcg_at_10: number;
  window_popular_recall_at_100_of_top10: number;
  window_popular_ndcg_at_10: number;
}

/**
 * The trainer's metric set: the live distillation-quality gauge (progressive validation), by
 * snapshot version and scope (`cumulative`: every request the version scored; `window`: the last
 * train.gauge.window scored requests), student and most-popular reference (`model`).
 */
export class TrainerMetrics {
  readonly registry = new Registry();
  readonly recall = new Gauge({
    name: 'rankdistill_live_recall_at_100_of_top10',
    help: "Live share of the teacher's top 10 in the serving snapshot's top 100, scored before training (model: student or popular).",
    labelNames: ['version', 'scope', 'model'],
    registers: [this.registry],
  });
  readonly ndcg = new Gauge({
    name: 'rankdistill_live_ndcg_at_10',
    help: "Live NDCG@10 of the serving snapshot's order of the candidates against the teacher's grades (model: student or popular).",
    labelNames: ['version', 'scope', 'model'],
    registers: [this.registry],
  });
  readonly requests = new Gauge({
    name: 'rankdistill_live_scored_requests',
    help: 'Requests scored by the serving snapshot (progressive validation), by version.',
    labelNames: ['version'],
    registers: [this.registry],
  });
  readonly drops = new Counter({
    name: 'rankdistill_live_quality_drops_total',
    help: 'Windows of live recall below the mean before them by more than train.gauge.dropThreshold.',
    registers: [this.registry],
  });
  private windowVersion: string | undefined;

  /** Sets the gauges from the serving version's live figures. */
  update(l: LiveFigures): void {
    const v = String(l.version);
    if (this.windowVersion !== undefined && this.windowVersion !== v)
      for (const model of ['student', 'popular']) {
        this.recall.remove({ version: this.windowVersion, scope: 'window', model });
        this.ndcg.remove({ version: this.windowVersion, scope: 'window', model });
      }
    this.windowVersion = v;
    this.requests.set({ version: v }, l.requests);
    const set = (scope: string, model: string, r: number, n: number) => {
      this.recall.set({ version: v, scope, model }, r);
      this.ndcg.set({ version: v, scope, model }, n);
    };
    set('cumulative', 'student', l.recall_at_100_of_top10, l.ndcg_at_10);
    set('cumulative', 'popular', l.popular_recall_at_100_of_top10, l.popular_ndcg_at_10);
    set('window', 'student', l.window_recall_at_100_of_top10, l.window_ndcg_at_10);
    set('window', 'popular', l.window_popular_recall_at_100_of_top10, l.window_popular_ndcg_at_10);
  }
}

/**
 * A live-quality record as one short text, e.g. `v3 recall 0.512 NDCG 0.411 (most-popular 0.44 /
 * 0.30) over 1200 requests`.
 *
 * @example
 * formatLive({ version: 3, requests: 1200, recall_at_100_of_top10: 0.5, ... });
 */
export function formatLive(l: Readonly<Record<string, number>>): string {
  const f = (k: string) => (l[k] === undefined ? '?' : (l[k] as number).toFixed(3));
  return `v${l.version ?? '?'} recall ${f('recall_at_100_of_top10')} NDCG ${f('ndcg_at_10')} (most-popular ${f('popular_recall_at_100_of_top10')} / ${f('popular_ndcg_at_10')}) over ${l.requests ?? 0} requests`;
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
