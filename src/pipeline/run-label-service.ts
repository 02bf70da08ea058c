/**
 * The labeler as a process runs it (`rankdistill label`): the runner ({@link createLabelRunner}:
 * one {@link LabelService} or its stream threads), the metrics endpoint, signals, and a stop
 * bounded by `kafka.stopTimeoutMs`.
 */
import type { Config } from '../config/schema.ts';
import { explainKafkaError } from '../kafka/access.ts';
import { aclsForRole } from '../kafka/acls.ts';
import { type Logger, logger } from '../log.ts';
import { type MetricsServer, serveMetrics } from '../metrics/index.ts';
import { createLabelRunner } from './label-threads.ts';

/**
 * Runs the service until `stopSignal` aborts (default: SIGTERM/SIGINT): metrics endpoint, graceful
 * stop bounded by `kafka.stopTimeoutMs`. A stop during start-up stops the start (no member is left
 * in the group) and returns normally; a fatal start-up error closes the metrics endpoint and is
 * thrown, so the process exits non-zero at once instead of being held alive by the endpoint.
 *
 * @example
 * await runLabelService(loadConfig());
 */
export async function runLabelService(config: Config, stopSignal?: AbortSignal): Promise<void> {
  const log = logger('label-service');
  const svc = createLabelRunner(config);
  let server: MetricsServer | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= stopWithin(svc, config.kafka.stopTimeoutMs, log);
    return stopping;
  };
  let signalled = false;
  const ac = new AbortController();
  const signal = stopSignal ?? ac.signal;
  const onSignal = (sig: NodeJS.Signals) => ac.abort(sig);
  if (stopSignal === undefined) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  const stopped = new Promise<void>((resolve) => {
    const onAbort = () => {
      log.info('signal received, stopping', { signal: signal.reason, withinMs: config.kafka.stopTimeoutMs });
      signalled = true;
      void stop().finally(resolve);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  const access = { kafka: config.kafka, grants: aclsForRole('labeler', config), role: 'labeler' };
  try {
    if (config.metrics.enabled) {
      server = await serveMetrics(svc.metrics, config.metrics.port, () => svc.healthy(), config.metrics.host);
      log.info('metrics listening', { port: server.port, url: `http://127.0.0.1:${server.port}/metrics` });
    }
    // A stop during start-up resolves `stopped` within kafka.stopTimeoutMs even when the start is
    // still waiting (for a group join, a broker): do not wait for the start beyond that.
    const starting = svc.start();
    starting.catch(() => undefined);
    try {
      if ((await Promise.race([starting.then(() => 'started' as const), stopped])) !== 'started') return;
    } catch (e) {
      // Stopped by a signal while starting: not a failure.
      if (signalled) return await stopped;
      throw e;
    }
    // A stream thread dying fails the runner: stop the others and fail, so the process is restarted.
    await Promise.race([stopped, svc.failed()]);
  } catch (e) {
    // A stream thread died, or the cluster refused access: stop the others and fail, so the
    // process exits non-zero (with the missing permission named).
    await stop();
    throw await explainKafkaError(e, access);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await server?.close();
  }
}

/**
 * `svc.stop()`, given at most `ms`: past it a warning is logged and this resolves anyway (the
 * caller exits; open transactions are aborted by the partitions' next owner, and the member
 * leaves the group at its session timeout).
 */
async function stopWithin(svc: { stop(): Promise<void> }, ms: number, log: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), ms);
  });
  const res = await Promise.race([
    svc.stop().catch((e: unknown) => log.warn('stop failed', { error: e })),
    late,
  ]);
  clearTimeout(timer);
  if (res === 'late') {
    log.warn('stop did not finish in kafka.stopTimeoutMs; exiting anyway', { ms });
  }
}
