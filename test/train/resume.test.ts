/**
 * Regression guard for exactly-once training over files: a trainer killed with SIGKILL mid-run and
 * restarted consumes every label record exactly once across the checkpoint chain it leaves.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { encodeJson } from '../../src/contracts/codec.ts';
import { type ConsumedRange, latestCheckpoint, readCheckpointState } from '../../src/train/checkpoint.ts';
import { isHeldOut } from '../../src/train/hash.ts';
import { SyntheticTeacher } from '../../src/train/synthetic.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'rd-resume-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const REQUESTS = 700;
const CONTRACT = {
  pointwise: 'PointwiseLabels',
  pairwise: 'PairwiseLabels',
  listwise: 'ListwiseLabels',
} as const;

let expectedExamples = 0;

function writeLabels(): Record<string, number> {
  const t = new SyntheticTeacher({ users: 50, items: 300, candidates: 10, k: 3, seed: 11 });
  const lines: Record<string, string[]> = { pointwise: [], pairwise: [], listwise: [] };
  for (let i = 0; i < REQUESTS; i++)
    for (const r of t.next(['pointwise', 'pairwise', 'listwise'])) {
      lines[r.kind]?.push(encodeJson(CONTRACT[r.kind], r.value as never));
      // training units: one per pointwise item, per pair, per list; held-out (5%) and validation
      // (the next 2%) requests none
      if (!isHeldOut(r.value.request_id, 5) && !isHeldOut(r.value.request_id, 2, 5))
        expectedExamples +=
          r.kind === 'pointwise' ? r.value.items.length : r.kind === 'pairwise' ? r.value.pairs.length : 1;
    }
  // one undecodable line: consumed (its offset is in a range) but never trained
  lines.pairwise?.splice(100, 0, '{"not": "a label"}');
  const counts: Record<string, number> = {};
  for (const [kind, ls] of Object.entries(lines)) {
    const path = join(dir, 'labels', `labels.${kind}.ndjson`);
    writeFileSync(path, `${ls.join('\n')}\n`, { flag: 'w' });
    counts[path] = ls.length;
  }
  return counts;
}

interface Run {
  child: ChildProcess;
  events: Record<string, unknown>[];
  exit: Promise<number | null>;
}

function startTrainer(onEvent: (e: Record<string, unknown>, run: Run) => void): Run {
  const child = spawn(
    process.execPath,
    [
      'bin/rankdistill.mjs',
      '-c',
      join(dir, 'config.json'),
      'train',
      '--labels',
      join(dir, 'labels'),
      '--out',
      join(dir, 'ckpt'),
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const run: Run = {
    child,
    events: [],
    exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
  };
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString().slice(0, 2000);
  });
  child.on('exit', (code) => {
    if (code !== 0 && code !== null) console.error(stderr);
  });
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    if (!line.startsWith('{')) return;
    const e = JSON.parse(line) as Record<string, unknown>;
    run.events.push(e);
    onEvent(e, run);
  });
  return run;
}

test('a trainer killed with SIGKILL and restarted consumes every label range exactly once', async () => {
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(dir, 'labels'));
  const counts = writeLabels();
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      train: {
        dim: 4,
        hidden: [],
        batchSize: 256,
        shuffleBuffer: 512,
        checkpointEveryExamples: 1500,
        keepCheckpoints: 0,
        contextBuckets: 0,
        itemFeatureBuckets: 0,
        frequencyBuckets: 1024,
        evalRequests: 20,
        sampledNegatives: 4,
        backend: 'wasm',
      },
    }),
  );

  // run 1: killed right after its second checkpoint, in the middle of consuming the next range
  let checkpoints = 0;
  const first = startTrainer((e, run) => {
    if (e.event === 'checkpoint' && ++checkpoints === 2) run.child.kill('SIGKILL');
  });
  await first.exit;
  assert.equal(first.child.signalCode, 'SIGKILL', 'the first run was killed, not finished');
  assert.ok(!first.events.some((e) => e.event === 'done'));

  // run 2: resumes from the newest checkpoint and finishes
  const second = startTrainer(() => undefined);
  assert.equal(await second.exit, 0);
  const resumed = second.events.find((e) => e.event === 'resumed');
  assert.ok(
    resumed !== undefined && (resumed.seq as number) >= 2,
    'run 2 resumed from a checkpoint of run 1',
  );
  assert.ok([...first.events, ...second.events].some((e) => e.event === 'bad-record'));

  // walk the checkpoint chain from the newest back to the first
  const out = join(dir, 'ckpt');
  const newest = latestCheckpoint(out);
  assert.ok(newest !== undefined);
  const ranges: ConsumedRange[] = [];
  let seq: number | null = newest.state.seq;
  let links = 0;
  while (seq !== null) {
    const s = readCheckpointState(out, seq);
    ranges.push(...s.ranges);
    seq = s.parent;
    links++;
  }
  assert.ok(links >= 3);
  for (const [path, lines] of Object.entries(counts)) {
    const mine = ranges.filter((r) => r.source === path).sort((a, b) => a.from - b.from);
    let next = 0;
    for (const r of mine) {
      assert.equal(
        r.from,
        next,
        `${path}: range ${r.from}-${r.to} should start at ${next} (no gap, no overlap)`,
      );
      assert.ok(r.to > r.from);
      next = r.to;
    }
    assert.equal(next, lines, `${path}: every line consumed`);
  }
  assert.equal(newest.state.totals.records, REQUESTS * 3, 'decodable records counted once');
  // every consumed unit was trained exactly once in the checkpointed history (buffer drained at
  // each checkpoint; nothing trained after the last checkpoint of run 1 survives)
  assert.equal(newest.state.totals.examples, expectedExamples);
  assert.ok(readFileSync(join(newest.dir, 'params.bin')).length > 0);
});
