/**
 * Stream threads for the labeler (Kafka Streams' `num.stream.threads`): `kafka.streamThreads`
 * {@link LabelService}s, each in a worker thread of this process with its own consumer-group
 * member, transactional producers (one per task) and SQLite stores under
 * `store.dir/thread-<i>`. Partitions spread over the threads exactly as over separate instances,
 * so exactly-once, fencing and restore are the multi-instance design unchanged; the threads only
 * share the process (and one metrics endpoint).
 *
 * One Node thread runs decode, join, labels, encode and kafkajs' protocol work serially; with the
 * broker on the same machine it tops out at one core. Threads let a 2-core host use both.
 *
 * A thread that dies makes the runner fail (`failed()` rejects): the process should exit and be
 * restarted, and its partitions move to the surviving members meanwhile. Crash-only, as for an
 * instance.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { AggregatorRegistry, Registry } from 'prom-client';
import type { Config } from '../config/schema.ts';
import { type ErrorCode, RankdistillError } from '../errors.ts';
import { logger } from '../log.ts';
import type { MetricsSource } from '../metrics/index.ts';
import { LabelService } from './label-service.ts';
import { type OutcomeCounts, sumCounters } from './outcomes.ts';

const log = logger('label-threads');

/** What a thread reports. */
export interface ThreadStatus {
  counts: OutcomeCounts;
  healthy: boolean;
  partitions: number[];
}

/** Thread → parent. */
export type ThreadMessage =
  | { type: 'started'; status: ThreadStatus }
  | { type: 'status'; status: ThreadStatus }
  | { type: 'stopped'; status: ThreadStatus }
  | { type: 'failed'; code: ErrorCode; message: string; details: Record<string, unknown> }
  | { type: 'metrics'; id: number; json: object[]; error?: string };

/** Parent → thread. */
export type ThreadRequest = { type: 'metrics'; id: number } | { type: 'stop' };

/** The labeler as the CLI and benchmarks drive it, whatever the thread count. */
export interface LabelRunner {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Outcome counts since start (with threads: as of their latest status, ≤ 100 ms old). */
  counts(): OutcomeCounts;
  healthy(): boolean;
  assignedPartitions(): number[];
  readonly metrics: MetricsSource;
  /** Rejects when the runner fails after start (a thread died); never resolves otherwise. */
  failed(): Promise<never>;
}

/**
 * The labeler with `config.kafka.streamThreads` threads: the service itself when 1, else
 * {@link LabelThreads}.
 *
 * @example
 * const runner = createLabelRunner(loadConfig());
 * await runner.start();
 */
export function createLabelRunner(config: Config): LabelRunner {
  if (config.kafka.streamThreads === 1) {
    const svc = new LabelService(config);
    return {
      start: () => svc.start(),
      stop: () => svc.stop(),
      counts: () => svc.counts(),
      healthy: () => svc.healthy(),
      assignedPartitions: () => svc.assignedPartitions(),
      metrics: svc.metrics.registry,
      failed: () => svc.failed(),
    };
  }
  return new LabelThreads(config);
}

interface Thread {
  index: number;
  worker: Worker;
  status: ThreadStatus | undefined;
  exited: boolean;
  stopping: boolean;
}

/**
 * `n` labeler threads. `start()` resolves when every thread's service started (or rejects with
 * the first thread's start error, after stopping the others).
 *
 * @example
 * const threads = new LabelThreads(config); // config.kafka.streamThreads = 2
 * await threads.start();
 * await threads.stop();
 */
export class LabelThreads implements LabelRunner {
  readonly config: Config;
  readonly #threads: Thread[] = [];
  readonly #pending = new Map<number, (json: object[]) => void>();
  #nextId = 0;
  #fail: ((e: Error) => void) | undefined;
  readonly #failed: Promise<never>;

  constructor(config: Config) {
    this.config = config;
    this.#failed = new Promise<never>((_, reject) => {
      this.#fail = reject;
    });
    this.#failed.catch(() => undefined); // observed through failed()
  }

  readonly metrics: MetricsSource = {
    contentType: Registry.PROMETHEUS_CONTENT_TYPE,
    metrics: async () => {
      const all = await Promise.all(this.#threads.filter((t) => !t.exited).map((t) => this.#scrape(t)));
      return AggregatorRegistry.aggregate(all).metrics();
    },
  };

  async start(): Promise<void> {
    const n = this.config.kafka.streamThreads;
    // Compiled (dist/*.js), a thread starts on the compiled worker directly. From the sources
    // (tsx), it starts on a small .mjs that registers tsx first: a worker thread does not inherit
    // the loader the parent registered through tsx's API.
    const compiled = import.meta.url.endsWith('.js');
    const entry = new URL('./label-thread-worker.ts', import.meta.url).href;
    const started: Promise<void>[] = [];
    for (let index = 0; index < n; index++) {
      const config: Config = {
        ...this.config,
        store: { ...this.config.store, dir: join(this.config.store.dir, `thread-${index}`) },
      };
      const worker = new Worker(
        new URL(compiled ? './label-thread-worker.js' : './label-thread-boot.mjs', import.meta.url),
        // Not the parent's loader flags (tsx registers itself in the boot file); a CPU profile
        // asked of the process (`node --cpu-prof`) covers the stream threads too.
        {
          workerData: { config, entry },
          execArgv: process.execArgv.filter((a) => a.startsWith('--cpu-prof')),
        },
      );
      const t: Thread = { index, worker, status: undefined, exited: false, stopping: false };
      this.#threads.push(t);
      started.push(this.#watch(t));
    }
    const results = await Promise.allSettled(started);
    const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (bad !== undefined) {
      await this.stop();
      throw bad.reason;
    }
    log.info('label stream threads started', { threads: n });
  }

  /** Resolves when the thread's service started; routes its later messages. */
  #watch(t: Thread): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let up = false;
      t.worker.on('message', (m: ThreadMessage) => {
        switch (m.type) {
          case 'started':
            up = true;
            t.status = m.status;
            resolve();
            return;
          case 'status':
          case 'stopped':
            t.status = m.status;
            return;
          case 'failed': {
            const err = new RankdistillError(m.code, `stream thread ${t.index}: ${m.message}`, {
              details: m.details,
            });
            // After start: the cluster refused access (the service's failed()); the thread stops.
            if (!up) reject(err);
            else this.#fail?.(err);
            return;
          }
          case 'metrics':
            this.#pending.get(m.id)?.(m.json);
            this.#pending.delete(m.id);
            return;
        }
      });
      t.worker.on('error', (e) => {
        log.error('stream thread crashed', { thread: t.index, error: e });
        const err = new RankdistillError('THREAD_FAILED', `stream thread ${t.index} crashed: ${e.message}`, {
          cause: e,
        });
        if (!up) reject(err);
        else this.#fail?.(err);
      });
      t.worker.on('exit', (code) => {
        t.exited = true;
        if (!t.stopping) {
          const err = new RankdistillError(
            'THREAD_FAILED',
            `stream thread ${t.index} exited unexpectedly (code ${code})`,
          );
          if (!up) reject(err);
          else this.#fail?.(err);
        }
      });
    });
  }

  #scrape(t: Thread): Promise<object[]> {
    const id = this.#nextId++;
    return new Promise<object[]>((resolve) => {
      this.#pending.set(id, resolve);
      t.worker.postMessage({ type: 'metrics', id } satisfies ThreadRequest);
    });
  }

  /** Stops every thread gracefully (each commits its open batches and leaves the group). */
  async stop(): Promise<void> {
    await Promise.all(
      this.#threads.map(async (t) => {
        if (t.exited) return;
        t.stopping = true;
        const exited = new Promise<void>((resolve) => t.worker.once('exit', () => resolve()));
        t.worker.postMessage({ type: 'stop' } satisfies ThreadRequest);
        // A graceful stop commits and leaves the group within the session timeout; past that the
        // thread is stuck and is terminated (its open transaction is aborted by the next owner).
        const limit = this.config.kafka.sessionTimeoutMs + this.config.kafka.transactionTimeoutMs;
        const timer = setTimeout(() => {
          log.warn('stream thread did not stop in time; terminating it', { thread: t.index, ms: limit });
          void t.worker.terminate();
        }, limit);
        await exited;
        clearTimeout(timer);
      }),
    );
    log.info('label stream threads stopped', { counts: this.counts() });
  }

  counts(): OutcomeCounts {
    const sum = sumCounters([]);
    for (const t of this.#threads) {
      const c = t.status?.counts;
      if (c === undefined) continue;
      for (const k of Object.keys(sum) as (keyof OutcomeCounts)[]) sum[k] += c[k];
    }
    return sum;
  }

  healthy(): boolean {
    return this.#threads.length > 0 && this.#threads.every((t) => !t.exited && t.status?.healthy === true);
  }

  assignedPartitions(): number[] {
    return this.#threads.flatMap((t) => t.status?.partitions ?? []).sort((a, b) => a - b);
  }

  failed(): Promise<never> {
    return this.#failed;
  }
}
