// `rankdistill snapshots list|show|rollback` and `rankdistill recall` on a registry built by the
// publisher (registry only: rollback --no-announce; the Kafka path is in the integration test),
// and on copied, corrupted and moved snapshot directories.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { main } from '../../src/cli/main.ts';
import { openPublisher } from '../../src/snapshots/publisher.ts';
import { publishInput, tempRoot } from './helpers.ts';

async function run(t: TestContext, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = t.mock.method(console, 'log', () => {});
  const err = t.mock.method(console, 'error', () => {});
  process.exitCode = undefined;
  const code = await main(['node', 'rankdistill', ...args]);
  process.exitCode = undefined;
  const text = (m: typeof out) => m.mock.calls.map((c) => c.arguments.join(' ')).join('\n');
  const r = { code, out: text(out), err: text(err) };
  out.mock.restore();
  err.mock.restore();
  return r;
}

describe('snapshots and recall commands', () => {
  const root = tempRoot('rd-snap-cli-');
  const saved = { ...process.env };
  before(async () => {
    process.env.RANKDISTILL_SNAPSHOTS__DIR = root;
    process.env.RANKDISTILL_SNAPSHOTS__REGISTRY = join(root, 'registry.sqlite');
    const pub = openPublisher({
      dir: root,
      registry: join(root, 'registry.sqlite'),
      gateTolerance: 0.02,
      modelName: 's',
    });
    await pub.maybePublish(publishInput({}, 1));
    await pub.maybePublish(publishInput({ parentVersion: 1 }, 2));
    await pub.maybePublish(publishInput({ parentVersion: 2, metrics: { ndcg_at_10: 0.1 } }, 3));
    await pub.close();
  });
  after(() => {
    process.env = saved;
  });

  test('list marks the current version and shows why a snapshot was rejected', async (t) => {
    const r = await run(t, 'snapshots', 'list');
    assert.equal(r.code, 0);
    const lines = r.out.split('\n');
    assert.match(lines[1]!, /^\* v2\tpublished/);
    assert.match(lines[2]!, /^ {2}v3\trejected.*reason: ndcg_at_10 0\.1 < 0\.58/);
  });

  test('rollback makes v1 current; recall then answers from v1', async (t) => {
    assert.equal((await run(t, 'snapshots', 'rollback', 'v1', '--no-announce')).code, 0);
    const list = await run(t, 'snapshots', 'list', '--json');
    assert.equal(JSON.parse(list.out).current, 1);
    const r = await run(t, 'recall', '--snapshot', 'latest', '--user', 'user-4', '--k', '7', '--json');
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as { snapshot: number; items: { id: string; score: number }[] };
    assert.equal(j.snapshot, 1);
    assert.equal(j.items.length, 7);
    for (let i = 1; i < 7; i++) assert.ok(j.items[i - 1]!.score >= j.items[i]!.score);
  });

  test('rollback to a rejected version fails with its code; show reports a damaged file', async (t) => {
    const r = await run(t, 'snapshots', 'rollback', '3');
    assert.equal(r.code, 2);
    assert.match(r.err, /SNAPSHOT_REJECTED/);
    writeFileSync(join(root, 'v2', 'items.ids'), 'x\n');
    const s = await run(t, 'snapshots', 'show', '2');
    assert.equal(s.code, 2);
    assert.match(JSON.parse(s.out).verified, /SNAPSHOT|items\.ids/);
    const rec = await run(t, 'recall', '--snapshot', '2', '--user', 'user-1');
    assert.equal(rec.code, 2);
    assert.match(rec.err, /SNAPSHOT_CORRUPT.*items\.ids/);
  });
});

// Real CLI processes on a snapshot directory that was copied or moved: the registry's paths are
// relative to it, so a copy reads (and verifies) its own files and a moved directory works.
describe('a snapshot directory is self-contained: copied, corrupted, moved (CLI processes)', () => {
  const bin = fileURLToPath(new URL('../../bin/rankdistill.mjs', import.meta.url));
  const base = tempRoot('rd-snap-move-');
  const original = join(base, 'original');
  // No config file, no RANKDISTILL_* variables: only --snapshots (or the one env variable) says where.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RANKDISTILL_')));
  const cli = (args: string[], extraEnv: Record<string, string> = {}, cwd = base) =>
    spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', env: { ...env, ...extraEnv } });

  before(async () => {
    const pub = openPublisher({
      dir: original,
      registry: join(original, 'registry.sqlite'),
      gateTolerance: 0.02,
      modelName: 's',
    });
    const metrics = { recall_at_100_of_top10: 0.5, ndcg_at_10: 0.6, auc: 0.7, eval_requests: 152 };
    await pub.maybePublish(publishInput({ metrics }, 1));
    await pub.maybePublish(publishInput({ parentVersion: 1, metrics }, 2));
    await pub.close();
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  test('a corrupt copy is refused by `snapshots show` and `recall --snapshots COPY`; the original is still accepted', () => {
    const copy = join(base, 'copy');
    cpSync(original, copy, { recursive: true });
    const ids = join(copy, 'v2', 'items.ids');
    writeFileSync(ids, readFileSync(ids, 'utf8').replace('item-0', 'item-X'));

    const showCopy = cli(['snapshots', 'show', 'v2', '--snapshots', copy]);
    assert.equal(showCopy.status, 2, showCopy.stderr);
    const shown = JSON.parse(showCopy.stdout) as { path: string; verified: string };
    assert.equal(shown.path, join(copy, 'v2'), 'the copy names its own files');
    assert.match(shown.verified, /SNAPSHOT_CORRUPT|items\.ids/);
    const recallCopy = cli(['recall', '--snapshots', copy, '--user', 'user-1', '--k', '3']);
    assert.equal(recallCopy.status, 2);
    assert.match(recallCopy.stderr, /SNAPSHOT_CORRUPT.*copy\/v2.*items\.ids/);

    const showOriginal = cli(['snapshots', 'show', 'v2', '--snapshots', original]);
    assert.equal(showOriginal.status, 0, showOriginal.stderr);
    assert.equal((JSON.parse(showOriginal.stdout) as { verified: string }).verified, 'ok');
    const recallOriginal = cli(['recall', '--snapshots', original, '--user', 'user-1', '--k', '3', '--json']);
    assert.equal(recallOriginal.status, 0, recallOriginal.stderr);
    assert.equal((JSON.parse(recallOriginal.stdout) as { items: unknown[] }).items.length, 3);
  });

  test('a moved directory works from its new place, by --snapshots or RANKDISTILL_SNAPSHOTS__DIR alone', () => {
    const before = join(base, 'to-move');
    cpSync(original, before, { recursive: true });
    const moved = join(base, 'elsewhere', 'moved');
    mkdirSync(join(base, 'elsewhere'));
    renameSync(before, moved);
    const list = cli(['snapshots', 'list', '--json', '--snapshots', moved]);
    assert.equal(list.status, 0, list.stderr);
    assert.equal((JSON.parse(list.stdout) as { current: number }).current, 2);
    const text = cli(['snapshots', 'list', '--snapshots', moved]);
    assert.match(text.stdout, /^\* v2\tpublished\t.* eval_requests=152(\t|$)/m, 'an integer prints as one');
    assert.match(text.stdout, /auc=0\.7000/);
    const show = cli(['snapshots', 'show', '2'], { RANKDISTILL_SNAPSHOTS__DIR: moved });
    assert.equal(show.status, 0, show.stderr);
    assert.equal((JSON.parse(show.stdout) as { path: string }).path, join(moved, 'v2'));
    // relative to the working directory, as a user types it
    const recall = cli(
      ['recall', '--snapshots', 'moved', '--user', 'user-2', '--k', '2'],
      {},
      join(base, 'elsewhere'),
    );
    assert.equal(recall.status, 0, recall.stderr);
    assert.match(recall.stdout, /^# snapshot v2, user user-2/);
    const rollback = cli(['snapshots', 'rollback', 'v1', '--no-announce', '--snapshots', moved]);
    assert.equal(rollback.status, 0, rollback.stderr);
    assert.equal(
      (JSON.parse(cli(['snapshots', 'list', '--json', '--snapshots', moved]).stdout) as { current: number })
        .current,
      1,
    );
    assert.equal(
      (
        JSON.parse(cli(['snapshots', 'list', '--json', '--snapshots', original]).stdout) as {
          current: number;
        }
      ).current,
      2,
      'the original registry is untouched',
    );
  });

  test('a registry written with absolute paths (before they were relative) still loads, copied or not', () => {
    const legacy = join(base, 'legacy');
    cpSync(original, legacy, { recursive: true });
    const db = new Database(join(legacy, 'registry.sqlite'));
    db.prepare("UPDATE snapshots SET path = ? || '/v' || version").run(legacy);
    db.close();
    const copy = join(base, 'legacy-copy');
    cpSync(legacy, copy, { recursive: true });
    rmSync(join(copy, 'v1'), { recursive: true });
    for (const [dir, v] of [
      [legacy, 'v1'],
      [copy, 'v2'],
    ] as const) {
      const r = cli(['snapshots', 'show', v, '--snapshots', dir]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { path: string }).path, join(dir, v));
    }
    // v1 is gone from the copy: its absolute path (the legacy directory's v1) is used as written
    const gone = cli(['snapshots', 'show', 'v1', '--snapshots', copy]);
    assert.equal((JSON.parse(gone.stdout) as { path: string }).path, join(legacy, 'v1'));
  });

  test('without a registry the commands say where they looked and how to point elsewhere; none is created', () => {
    const empty = join(base, 'empty');
    mkdirSync(empty);
    for (const args of [
      ['snapshots', 'list'],
      ['snapshots', 'rollback', '1'],
      ['recall', '--user', 'u1'],
    ]) {
      const r = cli(args, {}, empty);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /SNAPSHOT_NOT_FOUND.*snapshots\/registry\.sqlite.*--snapshots DIR/);
    }
    assert.ok(!existsSync(join(empty, 'snapshots')), 'no empty registry was created');
  });
});
