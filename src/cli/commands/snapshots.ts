import { resolve } from 'node:path';
import type { Command } from 'commander';
import { type Config, loadConfig } from '../../config/index.ts';
import { errorMessage, RankdistillError } from '../../errors.ts';
import { formatLive } from '../../metrics/index.ts';
import { formatGateSummary } from '../../snapshots/gate.ts';
import { openPublisherFromConfig } from '../../snapshots/publisher.ts';
import { openRegistry, registryPathOf, type SnapshotRecord } from '../../snapshots/registry.ts';
import { loadSnapshotDir } from '../../snapshots/store.ts';

/** The `--snapshots DIR` option every snapshot command takes. */
export const SNAPSHOTS_OPTION = [
  '--snapshots <dir>',
  'snapshot directory (holds registry.sqlite and v<N>/); default snapshots.dir of the config (env RANKDISTILL_SNAPSHOTS__DIR)',
] as const;

/**
 * The config of a snapshot command: `--snapshots DIR` replaces snapshots.dir and makes the
 * registry DIR/registry.sqlite (a snapshot directory carries its registry).
 *
 * @example
 * const c = snapshotsConfig(cmd); openRegistry(registryPathOf(c.snapshots));
 */
export function snapshotsConfig(cmd: Command): Config {
  const o = cmd.optsWithGlobals<{ config?: string; snapshots?: string }>();
  const c = loadConfig({ file: o.config });
  if (o.snapshots === undefined) return c;
  const { registry: _ignored, ...rest } = c.snapshots;
  return { ...c, snapshots: { ...rest, dir: resolve(o.snapshots) } };
}

const config = snapshotsConfig;

function parseVersion(v: string): number {
  const n = Number(v.replace(/^v/, ''));
  if (!Number.isInteger(n) || n < 1)
    throw new RankdistillError(
      'USAGE',
      `expected a snapshot version like 3 or v3, found ${JSON.stringify(v)}`,
    );
  return n;
}

const metricsText = (m: Record<string, number>): string =>
  Object.entries(m)
    .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : Number.isFinite(v) ? v.toFixed(4) : v}`)
    .join(' ');

/**
 * `rankdistill snapshots list|show|rollback`: the registry of published and rejected snapshots, and
 * the operator's rollback (a new announcement, status `rollback`, on kafka.topics.snapshots).
 */
export function register(program: Command): void {
  const snapshots = program.command('snapshots').description('list, inspect and roll back student snapshots');

  snapshots
    .command('list')
    .description('every registered snapshot (published and rejected), the current one marked with *')
    .option('--json', 'print JSON')
    .option(...SNAPSHOTS_OPTION)
    .action((opts: { json?: boolean }, cmd: Command) => {
      const reg = openRegistry(registryPathOf(config(cmd).snapshots), { mustExist: true });
      try {
        const current = reg.current();
        const list = reg.list();
        if (opts.json) {
          console.log(
            JSON.stringify({ current: current?.snapshot.version ?? null, snapshots: list }, null, 2),
          );
          return;
        }
        if (list.length === 0) {
          console.log('no snapshots registered');
          return;
        }
        for (const s of list) {
          const mark = current?.snapshot.version === s.version ? '*' : ' ';
          const parent = s.parentVersion === null ? '-' : `v${s.parentVersion}`;
          console.log(
            `${mark} v${s.version}\t${s.status}\t${new Date(s.createdAt).toISOString()}\tparent ${parent}\t${metricsText(s.metrics)}${s.gate ? `\tgate: ${formatGateSummary(s.gate)}` : ''}${s.live ? `\tlive: ${formatLive(s.live)}` : ''}${s.reason ? `\treason: ${s.reason}` : ''}`,
          );
        }
      } finally {
        reg.close();
      }
    });

  snapshots
    .command('show')
    .description('one snapshot: registry record, announcements, and a checksum verification of its files')
    .argument('<version>', 'snapshot version (3 or v3)')
    .option(...SNAPSHOTS_OPTION)
    .action((v: string, _opts: unknown, cmd: Command) => {
      const version = parseVersion(v);
      const reg = openRegistry(registryPathOf(config(cmd).snapshots), { mustExist: true });
      try {
        const s: SnapshotRecord | null = reg.get(version);
        if (!s)
          throw new RankdistillError(
            'SNAPSHOT_NOT_FOUND',
            `snapshot v${version}: expected it in the registry, found none`,
          );
        let verified: string;
        try {
          loadSnapshotDir(s.path, s.files);
          verified = 'ok';
        } catch (e) {
          verified = errorMessage(e);
          process.exitCode = 2;
        }
        const announcements = reg.announcements().filter((a) => a.version === version);
        console.log(
          JSON.stringify(
            { ...s, current: reg.current()?.snapshot.version === version, verified, announcements },
            null,
            2,
          ),
        );
      } finally {
        reg.close();
      }
    });

  snapshots
    .command('rollback')
    .description('make an older published version current: records and announces it with status "rollback"')
    .argument('<version>', 'snapshot version (3 or v3)')
    .option('--no-announce', 'record the rollback only; the next publisher with Kafka sends it')
    .option(...SNAPSHOTS_OPTION)
    .action(async (v: string, opts: { announce: boolean }, cmd: Command) => {
      const version = parseVersion(v);
      const c = config(cmd);
      openRegistry(registryPathOf(c.snapshots), { mustExist: true }).close(); // never create one here
      let failure = '';
      // One quick retry: an operator at a terminal wants the reason in a second, not after
      // kafkajs's default backoff (~15 s against a broker that is not there).
      const pub = openPublisherFromConfig(c, {
        announce: opts.announce,
        retries: 1,
        onEvent: (e) => {
          if (e.type === 'announce-failed') failure = e.error;
        },
      });
      try {
        const r = await pub.rollback(version);
        if (!opts.announce) console.log(`v${version} is current (recorded; announcement pending)`);
        else if (r.announced)
          console.log(`v${version} is current (announced on ${c.kafka.topics.snapshots})`);
        else {
          console.error(
            `v${version} is current in the registry; the announcement on ${c.kafka.topics.snapshots} (brokers ${c.kafka.brokers.join(',')}) failed and stays pending: ${failure}. It is sent by the next \`snapshots rollback\` or trainer that reaches Kafka; --no-announce records without trying`,
          );
          process.exitCode = 2;
        }
      } finally {
        await pub.close();
      }
    });
}
