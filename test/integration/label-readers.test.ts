// The label readers for other languages (examples/python, and examples/java when
// RANKDISTILL_CHECK_JAVA=1) read exactly what the TypeScript client reads: the labeler writes the
// label topics with plain Avro values, then with the Confluent framing through a real schema
// registry (SCHEMA_REGISTRY_URL), and replay writes Avro container files; for each, every kind is
// read by subscribeLabels / readLabelFiles and by the other reader (as a child process printing
// JSON lines), and the two must hold the same label ids, once each, with the same values (every
// field, floats exact). Copies of labels written in an aborted transaction must be skipped
// (read_committed), and the reader's group must have committed its offsets past what it read
// (commit after the step).
//
// The Python venv is built by scripts/python-venv.sh from examples/python/requirements.txt with
// the machine's python3 and PyPI, cached by the file's hash (the first build takes minutes). A
// machine without python3, venv or pip fails this test saying so. The Java reader is built by
// scripts/check-java-reader.sh, which runs this file with RANKDISTILL_CHECK_JAVA=1.
//
// By hand: eval "$(bash scripts/kafka-local.sh start)"; eval "$(bash scripts/schema-registry-local.sh start)"
//   node --import tsx --test test/integration/label-readers.test.ts
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Admin, Kafka } from 'kafkajs';
import { LABEL_KINDS, type LabelKind, readLabelFiles, subscribeLabels } from '../../src/client/index.ts';
import type { Config } from '../../src/config/schema.ts';
import { LabelService } from '../../src/pipeline/label-service.ts';
import { replay } from '../../src/replay/replay.ts';
import { uniqueTopic } from './kafka-env.ts';
import {
  expectedLabels,
  produceInputs,
  type Received,
  readAll,
  SENTINEL_PREFIX,
  type SimFiles,
  simulateFiles,
  testConfig,
  testKafka,
  waitConsumed,
} from './label-helpers.ts';

const PARTITIONS = 2;
const REQUESTS = 120;
const ROOT = resolve(import.meta.dirname, '../..');
const JAVA = process.env.RANKDISTILL_CHECK_JAVA === '1';
const JAVA_JAR = join(ROOT, 'examples/java/target/rankdistill-label-reader.jar');

/** A label as read by some reader: its id and its value as plain JSON. */
type ById = Map<string, unknown>;

interface Reader {
  name: string;
  command: string;
  /** Arguments before the common `<kind> --brokers … | --file …` ones. */
  prefix: string[];
  /** Extra arguments for plain Avro values (the Python reader needs the writer schemas' folder). */
  plainArgs: string[];
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString('utf8')).slice(-4000);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolvePromise(Buffer.concat(out).toString('utf8'));
      else
        reject(
          new Error(
            `${cmd} ${args.join(' ')} exited with ${code ?? signal}${signal ? ' (timed out?)' : ''}:\n${err}`,
          ),
        );
    });
  });
}

/** The venv's python, built (or found in the cache) by scripts/python-venv.sh. */
async function pythonFromVenv(): Promise<string> {
  let out: string;
  try {
    out = await run('bash', ['scripts/python-venv.sh'], 900_000);
  } catch (e) {
    throw new Error(
      `the Python reader's venv could not be made (python3 with venv and pip is required): ${(e as Error).message}`,
    );
  }
  const python = /^PYTHON=(.+)$/m.exec(out)?.[1];
  assert.ok(python && existsSync(python), `scripts/python-venv.sh printed no usable PYTHON= line: ${out}`);
  return python;
}

/** Parses a reader's JSON lines into id → value, failing on a label delivered twice. */
function parseLines(reader: string, kind: LabelKind, text: string): { byId: ById; lines: ReaderLine[] } {
  const byId: ById = new Map();
  const lines = text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as ReaderLine);
  for (const l of lines) {
    assert.equal(l.kind, kind, `${reader} tags its examples with the kind`);
    assert.equal(l.id, (l.record as { id: string }).id, `${reader}: example id is the label id`);
    assert.ok(!byId.has(l.id), `${reader} delivered ${l.id} twice`);
    byId.set(l.id, l.record);
  }
  return { byId, lines };
}

interface ReaderLine {
  id: string;
  kind: string;
  topic: string | null;
  partition: number | null;
  offset: number | null;
  record: unknown;
}

/** Same ids, every value equal field by field (plain JSON on both sides: exact doubles). */
function assertSame(what: string, reader: string, ts: ById, other: ById): void {
  assert.ok(ts.size > 0, `${what}: the TypeScript client read labels`);
  const missing = [...ts.keys()].filter((id) => !other.has(id));
  const extra = [...other.keys()].filter((id) => !ts.has(id));
  assert.deepEqual(
    {
      missing: missing.slice(0, 5),
      extra: extra.slice(0, 5),
      nMissing: missing.length,
      nExtra: extra.length,
    },
    { missing: [], extra: [], nMissing: 0, nExtra: 0 },
    `${what}: ${reader} read the same label ids as the TypeScript client`,
  );
  for (const [id, v] of ts) assert.deepEqual(other.get(id), v, `${what}: ${reader}'s ${id} differs`);
}

/**
 * Writes copies of `records` to their topic in a transaction and aborts it: a reader that is not
 * read_committed then sees those labels twice.
 */
async function abortCopies(kafka: Kafka, records: Received[]): Promise<void> {
  const producer = kafka.producer({
    transactionalId: uniqueTopic('rd-readers-aborted'),
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  try {
    const txn = await producer.transaction();
    for (const r of records) {
      await txn.send({ topic: r.topic, messages: [{ key: r.key, value: r.value, partition: r.partition }] });
    }
    await txn.abort();
  } finally {
    await producer.disconnect();
  }
}

/** The `want` committed labels of `kind` through subscribeLabels, as id → plain JSON value. */
async function readWithClient(cfg: Config, kind: LabelKind, want: number): Promise<ById> {
  const topic = cfg.kafka.topics[kind];
  const sub = subscribeLabels({
    brokers: cfg.kafka.brokers,
    kind,
    topic,
    groupId: uniqueTopic('rd-readers-ts'),
    format: cfg.kafka.outputFormat,
    ...(cfg.kafka.schemaRegistryUrl ? { schemaRegistryUrl: cfg.kafka.schemaRegistryUrl } : {}),
    commitEvery: 1_000,
  });
  const byId: ById = new Map();
  try {
    for await (const m of sub) {
      assert.ok(!byId.has(m.value.id), `the TypeScript client delivered ${m.value.id} twice`);
      byId.set(m.value.id, JSON.parse(JSON.stringify(m.value)));
      if (byId.size >= want) break;
    }
  } finally {
    await sub.close();
  }
  assert.equal(byId.size, want, `the TypeScript client read every committed ${kind} label`);
  return byId;
}

/** The labeler over the simulated inputs until it consumed them all, then stopped. */
async function label(kafka: Kafka, admin: Admin, cfg: Config, sim: SimFiles): Promise<void> {
  const svc = new LabelService(cfg);
  await svc.start(); // creates the topics (and registers the output schemas with a registry)
  try {
    await produceInputs(kafka, cfg, sim, PARTITIONS);
    await waitConsumed(admin, cfg, 90_000);
  } finally {
    await svc.stop();
  }
}

describe('Python and Java label readers read what the TypeScript client reads', {
  timeout: 1_200_000,
}, () => {
  let kafka: Kafka;
  let admin: Admin;
  let work: string;
  let sim: SimFiles;
  const readers: Reader[] = [];
  const topics: string[] = [];

  before(async () => {
    const registry = (process.env.SCHEMA_REGISTRY_URL ?? '').trim();
    assert.ok(registry !== '', 'SCHEMA_REGISTRY_URL is not set: scripts/test.sh starts the local registry');
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    work = mkdtempSync(join(tmpdir(), 'rd-readers-'));
    const [python] = await Promise.all([
      pythonFromVenv(),
      simulateFiles(join(work, 'sim'), REQUESTS, 29).then((s) => {
        sim = s;
      }),
    ]);
    readers.push({
      name: 'python',
      command: python,
      prefix: ['examples/python/rankdistill_labels.py'],
      plainArgs: ['--schemas-dir', 'schemas'],
    });
    if (JAVA) {
      assert.ok(existsSync(JAVA_JAR), `${JAVA_JAR} is missing: scripts/check-java-reader.sh builds it`);
      readers.push({ name: 'java', command: 'java', prefix: ['-jar', JAVA_JAR], plainArgs: [] });
    }
  });

  after(async () => {
    if (topics.length > 0) await admin?.deleteTopics({ topics }).catch(() => undefined);
    await admin?.disconnect();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  for (const format of ['avro', 'confluent'] as const) {
    test(`label topics, ${format === 'avro' ? 'plain Avro values' : 'Confluent framing with a schema registry'}`, async () => {
      const over =
        format === 'confluent'
          ? { outputFormat: 'confluent', schemaRegistryUrl: process.env.SCHEMA_REGISTRY_URL }
          : {};
      const cfg = testConfig(join(work, `state-${format}`), PARTITIONS, over);
      topics.push(...Object.values(cfg.kafka.topics));
      await label(kafka, admin, cfg, sim);
      const expected = expectedLabels(cfg, sim);

      for (const kind of LABEL_KINDS) {
        const topic = cfg.kafka.topics[kind];
        const committed = await readAll(kafka, admin, [topic]);
        assert.ok(committed.length > 0, `${kind} labels were written`);
        // Aborted copies of the first label of each partition: read_committed readers skip them.
        await abortCopies(
          kafka,
          committed.filter((r, i) => committed.findIndex((x) => x.partition === r.partition) === i),
        );
        const ts = await readWithClient(cfg, kind, committed.length);
        const real = [...ts.keys()].filter((id) => !id.startsWith(SENTINEL_PREFIX));
        assert.deepEqual(
          real.filter((id) => !expected.has(id)),
          [],
          `the TypeScript client read only labels the labeler must write (${kind})`,
        );
        assert.ok(real.length > REQUESTS / 2, `most requests have ${kind} labels (${real.length})`);
        await Promise.all(
          readers.map(async (r) => {
            const group = uniqueTopic(`rd-readers-${r.name}`);
            const args = [...r.prefix, kind, '--brokers', cfg.kafka.brokers.join(','), '--topic', topic];
            args.push('--group', group, '--format', format, '--batch-size', '64');
            if (format === 'confluent') args.push('--schema-registry-url', cfg.kafka.schemaRegistryUrl ?? '');
            else args.push(...r.plainArgs);
            const { byId, lines } = parseLines(r.name, kind, await run(r.command, args, 180_000));
            assertSame(`${kind} (${format})`, r.name, ts, byId);
            assert.ok(
              lines.every((l) => l.topic === topic && l.partition !== null && l.offset !== null),
              `${r.name} says where each example came from`,
            );
            // Commit after the step: the group's offsets are past the last example of each partition.
            const last = new Map<number, number>();
            for (const l of lines) last.set(l.partition!, Math.max(last.get(l.partition!) ?? -1, l.offset!));
            const committed =
              (await admin.fetchOffsets({ groupId: group, topics: [topic] }))[0]?.partitions ?? [];
            for (const [p, o] of last) {
              const c = Number(committed.find((x) => x.partition === p)?.offset ?? -1);
              assert.ok(c > o, `${r.name} committed partition ${p} past offset ${o} (committed ${c})`);
            }
          }),
        );
      }
    });
  }

  test("replay's Avro container files", async () => {
    const cfg = testConfig(join(work, 'state-replay'), PARTITIONS);
    const out = join(work, 'replay-out');
    const r = await replay({
      config: cfg,
      input: { kind: 'files', dir: sim.dir },
      output: { kind: 'files', dir: out, format: 'avro' },
      stateDir: join(work, 'replay-state'),
    });
    assert.equal(r.status, 'complete');
    for (const kind of LABEL_KINDS) {
      const ts: ById = new Map();
      for await (const l of readLabelFiles(out, kind)) {
        assert.ok(!ts.has(l.id), `readLabelFiles gave ${l.id} twice`);
        ts.set(l.id, JSON.parse(JSON.stringify(l)));
      }
      assert.ok(ts.size > REQUESTS / 2, `replay wrote ${kind} labels (${ts.size})`);
      await Promise.all(
        readers.map(async (rd) => {
          const text = await run(
            rd.command,
            [...rd.prefix, kind, '--file', out, '--batch-size', '50'],
            120_000,
          );
          assertSame(`${kind} (replay files)`, rd.name, ts, parseLines(rd.name, kind, text).byId);
        }),
      );
    }
  });
});
