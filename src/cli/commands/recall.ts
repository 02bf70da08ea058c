import type { Command } from 'commander';
import { RankdistillError } from '../../errors.ts';
import { loadRegisteredSnapshot } from '../../snapshots/publisher.ts';
import { recallForUser, userVector } from '../../snapshots/recall.ts';
import { openRegistry, registryPathOf } from '../../snapshots/registry.ts';
import { type LoadedSnapshot, loadSnapshotDir } from '../../snapshots/store.ts';
import { SNAPSHOTS_OPTION, snapshotsConfig } from './snapshots.ts';

function open(spec: string, registryPath: string): LoadedSnapshot {
  if (spec.includes('/')) return loadSnapshotDir(spec);
  const reg = openRegistry(registryPath, { mustExist: true });
  try {
    if (spec === 'latest') return loadRegisteredSnapshot(reg, 'latest');
    const n = Number(spec.replace(/^v/, ''));
    if (!Number.isInteger(n) || n < 1)
      throw new RankdistillError(
        'USAGE',
        `--snapshot: expected latest, a version (3, v3) or a directory, found ${spec}`,
      );
    return loadRegisteredSnapshot(reg, n);
  } finally {
    reg.close();
  }
}

/**
 * The vector of `user`: its row in the snapshot's users table (no tfjs), or, for a user the
 * snapshot does not know, the exported user tower applied to a zero input (the cold-start vector:
 * zero id embedding, no context).
 */
async function queryVector(
  snap: LoadedSnapshot,
  user: string,
): Promise<{ vector: Float32Array; source: string }> {
  const users = snap.table('users');
  if (users?.ids.includes(user)) return { vector: userVector(snap, user), source: 'users table' };
  if (snap.manifest.models.user_tower === undefined) return { vector: userVector(snap, user), source: '' }; // throws, naming the user
  const tf = await import('@tensorflow/tfjs');
  const { loadSnapshotModel } = await import('../../snapshots/tfjs.ts');
  const tower = await loadSnapshotModel(snap, 'user_tower');
  const width = tower.inputs[0]?.shape[1] ?? 0;
  const out = tf.tidy(() =>
    (tower.predict(tf.zeros([1, width])) as import('@tensorflow/tfjs').Tensor).dataSync(),
  );
  return { vector: Float32Array.from(out), source: 'user_tower on a zero input (unknown user: cold start)' };
}

/**
 * `rankdistill recall --snapshot <v|latest> --user <id> --k 100`: exact top-k items of a user;
 * `--history ITEM,ITEM...`: the user's vector from that history (a snapshot of a behaviour tower),
 * for any user, known or not.
 */
export function register(program: Command): void {
  program
    .command('recall')
    .description("load a snapshot and print a user's top items by exact dot product over the item table")
    .requiredOption('--snapshot <v>', 'latest, a version (3 or v3) or a snapshot directory', 'latest')
    .option('--user <id>', 'user id (required without --history)')
    .option(
      '--history <items>',
      "comma-separated item ids of the user's recent positives: the vector comes from them (behaviour tower snapshots)",
    )
    .option('--k <n>', 'number of items', '100')
    .option('--json', 'print JSON {snapshot, user, items: [{id, score}]}')
    .option(...SNAPSHOTS_OPTION)
    .action(
      async (
        opts: { snapshot: string; user?: string; history?: string; k: string; json?: boolean },
        cmd: Command,
      ) => {
        const k = Number(opts.k);
        if (!Number.isInteger(k) || k < 1)
          throw new RankdistillError('USAGE', `--k: expected a positive integer, found ${opts.k}`);
        if (opts.user === undefined && opts.history === undefined)
          throw new RankdistillError('USAGE', 'recall: give --user <id>, --history ITEM,ITEM... or both');
        const c = snapshotsConfig(cmd);
        const snap = open(opts.snapshot, registryPathOf(c.snapshots));
        const q =
          opts.history !== undefined
            ? await historyVector(snap, opts.history, opts.user)
            : await queryVector(snap, opts.user as string);
        const t0 = performance.now();
        const top = recallForUser(snap, q.vector, k);
        const ms = performance.now() - t0;
        if (opts.json) {
          console.log(
            JSON.stringify({
              snapshot: snap.version,
              user: opts.user ?? null,
              userVector: q.source,
              items: top.ids.map((id, i) => ({ id, score: top.scores[i] })),
            }),
          );
          return;
        }
        console.log(
          `# snapshot v${snap.version}, user ${opts.user} (${q.source}), top ${top.ids.length} of ${snap.manifest.model.numItems} items in ${ms.toFixed(1)} ms`,
        );
        top.ids.forEach((id, i) => {
          console.log(`${i + 1}\t${id}\t${top.scores[i]?.toFixed(6)}`);
        });
      },
    );
}

async function historyVector(
  snap: LoadedSnapshot,
  list: string,
  user: string | undefined,
): Promise<{ vector: Float32Array; source: string }> {
  const history = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (history.length === 0)
    throw new RankdistillError(
      'USAGE',
      `--history: expected comma-separated item ids, found ${JSON.stringify(list)}`,
    );
  const { userVectorFromHistory } = await import('../../snapshots/history.ts');
  const r = await userVectorFromHistory(snap, { history, ...(user !== undefined ? { user } : {}) });
  const skipped = r.unknown.length > 0 ? `; not in the snapshot, skipped: ${r.unknown.join(',')}` : '';
  return {
    vector: r.vector,
    source: `user_tower on a history of ${r.used} items${r.userKnown ? ' and the user id embedding' : ' (no user id embedding)'}${skipped}`,
  };
}
