import type { Command } from 'commander';
import { type Config, loadConfig } from '../../config/index.ts';
import { errorMessage, RankdistillError } from '../../errors.ts';
import { formatLive } from '../../metrics/index.ts';
import { formatGateSummary } from '../../snapshots/gate.ts';
import { openPublisherFromConfig } from '../../snapshots/publisher.ts';
import { openRegistry, type SnapshotRecord } from '../../snapshots/registry.ts';
import { loadSnapshotDir } from '../../snapshots/store.ts';

function config(cmd: Command): Config {
  return loadConfig({ file: cmd.optsWithGlobals<{ config?: string }>().config });
}

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
    .map(([k, v]) => `${k}=${Number.isFinite(v) ? v.toFixed(4) : v}`)
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
    .action((opts: { json?: boolean }, cmd: Command) => {
      const reg = openRegistry(config(cmd).snapshots.registry, { mustExist: true });
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
    .action((v: string, _opts: unknown, cmd: Command) => {
      const version = parseVersion(v);
      const reg = openRegistry(config(cmd).snapshots.registry, { mustExist: true });
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
    .action(async (v: string, opts: { announce: boolean }, cmd: Command) => {
      const version = parseVersion(v);
      const c = config(cmd);
      const pub = openPublisherFromConfig(c, { announce: opts.announce });
      try {
        const r = await pub.rollback(version);
        if (!opts.announce) console.log(`v${version} is current (recorded; announcement pending)`);
        else if (r.announced)
          console.log(`v${version} is current (announced on ${c.kafka.topics.snapshots})`);
        else {
          console.error(`v${version} is current in the registry; the announcement failed and stays pending`);
          process.exitCode = 2;
        }
      } finally {
        await pub.close();
      }
    });
}
