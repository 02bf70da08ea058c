// `rankdistill snapshots list|show|rollback` and `rankdistill recall` on a registry built by the
// publisher (registry only: rollback --no-announce; the Kafka path is in the integration test).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, type TestContext, test } from 'node:test';
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
