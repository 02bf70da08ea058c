import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isRankdistillError } from '../../src/errors.ts';
import { MANIFEST_FORMAT, type Manifest } from '../../src/snapshots/manifest.ts';
import {
  cleanStaleTemps,
  highestVersionOnDisk,
  listVersionDirs,
  loadSnapshotDir,
  sha256Hex,
  writeSnapshotDir,
} from '../../src/snapshots/store.ts';
import { encodeTable } from '../../src/snapshots/table.ts';
import { table, tempRoot } from './helpers.ts';

function write(root: string, version: number) {
  const files = [
    { name: 'model/model.json', data: Buffer.from('{"a":1}') },
    { name: 'model/weights.bin', data: new Uint8Array(1000).fill(3) },
    ...encodeTable('items', table(20, 4)),
  ];
  return writeSnapshotDir(
    root,
    version,
    files,
    (entries): Manifest => ({
      format: MANIFEST_FORMAT,
      version,
      createdAt: 1,
      parentVersion: null,
      model: { kind: 'two-tower', dim: 4, params: 1, numItems: 20, numUsers: 0 },
      offsets: [{ topic: 't', partition: 0, offset: 5 }],
      metrics: { auc: 0.5 },
      tables: { items: 'items.json' },
      models: { m: 'model/model.json' },
      files: entries,
      extra: {},
    }),
  );
}

function expectCorrupt(dir: string, file: string, pattern: RegExp) {
  assert.throws(
    () => loadSnapshotDir(dir),
    (e) => {
      assert.ok(isRankdistillError(e, 'SNAPSHOT_CORRUPT'), `expected SNAPSHOT_CORRUPT, got ${String(e)}`);
      assert.equal(e.details.file, file);
      assert.match(e.message, new RegExp(`file ${file.replace('.', '\\.')}`));
      assert.match(e.message, pattern);
      return true;
    },
  );
}

describe('snapshot store', () => {
  test('writes v<N> with sha256 of every file, and loads it back verified', () => {
    const root = tempRoot();
    const w = write(root, 1);
    assert.deepEqual(readdirSync(root), ['v1']);
    assert.equal(w.manifest.files.length, 5);
    for (const f of w.manifest.files)
      assert.equal(f.sha256, sha256Hex(readFileSync(join(root, 'v1', f.name))));
    assert.equal(w.manifestSha256, sha256Hex(readFileSync(join(root, 'v1', 'manifest.json'))));
    const s = loadSnapshotDir(join(root, 'v1'));
    assert.equal(s.version, 1);
    assert.deepEqual(s.table('items')?.ids, table(20, 4).ids);
    assert.deepEqual(s.file('model/model.json').toString(), '{"a":1}');
  });

  test('an altered byte is refused naming the file', () => {
    const root = tempRoot();
    write(root, 1);
    const p = join(root, 'v1', 'model', 'weights.bin');
    const b = readFileSync(p);
    b[500] = 9;
    writeFileSync(p, b);
    expectCorrupt(join(root, 'v1'), 'model/weights.bin', /expected sha256 [0-9a-f]{64}, found [0-9a-f]{64}/);
  });

  test('a truncated file is refused naming the file and both sizes', () => {
    const root = tempRoot();
    write(root, 1);
    truncateSync(join(root, 'v1', 'items.f32'), 100);
    expectCorrupt(join(root, 'v1'), 'items.f32', /expected 320 bytes, found 100/);
  });

  test('a missing file and a damaged manifest are refused naming them', () => {
    const root = tempRoot();
    write(root, 1);
    write(root, 2);
    unlinkSync(join(root, 'v1', 'items.ids'));
    expectCorrupt(join(root, 'v1'), 'items.ids', /ENOENT/);
    truncateSync(join(root, 'v2', 'manifest.json'), 30);
    expectCorrupt(join(root, 'v2'), 'manifest.json', /expected JSON/);
  });

  test('the manifest is checked against the announced checksum when one is given', () => {
    const root = tempRoot();
    const w = write(root, 1);
    const m = readFileSync(join(root, 'v1', 'manifest.json'), 'utf8');
    writeFileSync(join(root, 'v1', 'manifest.json'), m.replace('"createdAt": 1', '"createdAt": 2'));
    assert.doesNotThrow(() => loadSnapshotDir(join(root, 'v1')));
    assert.throws(
      () =>
        loadSnapshotDir(join(root, 'v1'), [
          { name: 'manifest.json', sha256: w.manifestSha256, bytes: w.manifestBytes },
        ]),
      (e) => isRankdistillError(e, 'SNAPSHOT_CORRUPT') && e.details.file === 'manifest.json',
    );
  });

  test('never overwrites an existing version', () => {
    const root = tempRoot();
    write(root, 1);
    assert.throws(
      () => write(root, 1),
      (e) => isRankdistillError(e, 'IO_FAILED') && /exists/.test(e.message),
    );
    assert.deepEqual(readdirSync(root), ['v1']);
  });

  test('refuses file names that would escape the snapshot directory', () => {
    const root = tempRoot();
    for (const name of ['../x', '/abs', 'a//b', 'manifest.json', '.tmp-v1-1/x']) {
      assert.throws(
        () => writeSnapshotDir(root, 1, [{ name, data: new Uint8Array(1) }], () => ({}) as Manifest),
        (e) => isRankdistillError(e, 'TRAIN_INPUT_INVALID'),
        name,
      );
    }
  });

  test('cleanStaleTemps removes temp dirs of dead writers and keeps live ones', () => {
    const root = tempRoot();
    write(root, 1);
    const dead = spawnSync(process.execPath, [
      '-e',
      'process.stdout.write(String(process.pid))',
    ]).stdout.toString();
    mkdirSync(join(root, `.tmp-v2-${dead}`));
    writeFileSync(join(root, `.tmp-v2-${dead}`, 'half.bin'), 'x');
    mkdirSync(join(root, `.tmp-v3-${process.pid}`));
    assert.equal(highestVersionOnDisk(root), 3);
    assert.deepEqual(cleanStaleTemps(root), [`.tmp-v2-${dead}`]);
    assert.equal(existsSync(join(root, `.tmp-v3-${process.pid}`)), true);
    assert.deepEqual(listVersionDirs(root), [1]);
  });
});
