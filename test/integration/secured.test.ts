// rankdistill against a secured broker: SASL_SSL with SCRAM, the StandardAuthorizer and
// allow.everyone.if.no.acl.found=false (scripts/kafka-local.sh start --secured, which
// scripts/test.sh starts because this file reads KAFKA_SECURED_BROKERS). Every run is the real CLI
// in its own process, as a user holding only the ACLs `aclsForRole` lists (the ones
// docs/OPERATIONS.md prints with `rankdistill acls`).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import kafkajs, { type Admin, type Kafka, Kafka as KafkaClient, logLevel } from 'kafkajs';
import { subscribeLabels } from '../../src/client/index.ts';
import { type Config, configSchema } from '../../src/config/schema.ts';
import { type AclGrant, aclsForRole } from '../../src/kafka/acls.ts';
import { createTopicsAndWait } from '../../src/kafka/topics.ts';
import {
  assertExactlyExpected,
  expectedLabels,
  produceInputs,
  readAll,
  type SimFiles,
  simulateFiles,
  waitConsumed,
} from './label-helpers.ts';

// The ACL enums are not visible as ESM named exports of kafkajs (CommonJS).
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;

const BIN = new URL('../../bin/rankdistill.mjs', import.meta.url).pathname;
const PARTITIONS = 2;

function env(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') {
    throw new Error(
      `${name} is not set: run this file through scripts/test.sh, which starts the secured broker`,
    );
  }
  return v;
}
const brokers = () => [env('KAFKA_SECURED_BROKERS')];
const ca = () => env('KAFKA_SECURED_CA');
const password = (user: string) => env(`KAFKA_SECURED_PASSWORD_${user.toUpperCase()}`);

function adminKafka(): Kafka {
  return new KafkaClient({
    clientId: 'rd-secured-test',
    brokers: brokers(),
    ssl: { ca: [readFileSync(ca(), 'utf8')] },
    sasl: { mechanism: 'scram-sha-512', username: 'admin', password: password('admin') },
    logLevel: logLevel.NOTHING,
    retry: { retries: 8, initialRetryTime: 100 },
  });
}

const RESOURCE = {
  topic: AclResourceTypes.TOPIC,
  group: AclResourceTypes.GROUP,
  'transactional-id': AclResourceTypes.TRANSACTIONAL_ID,
  cluster: AclResourceTypes.CLUSTER,
} as const;

/** Grants exactly `grants` to `principal` (as the documented kafka-acls commands would). */
async function grant(admin: Admin, grants: readonly AclGrant[], principal: string): Promise<void> {
  await admin.createAcls({
    acl: grants.flatMap((g) =>
      g.operations.map((op) => ({
        resourceType: RESOURCE[g.resource],
        resourceName: g.resource === 'cluster' ? 'kafka-cluster' : g.name,
        resourcePatternType:
          g.pattern === 'prefixed' ? ResourcePatternTypes.PREFIXED : ResourcePatternTypes.LITERAL,
        principal,
        host: '*',
        operation: AclOperationTypes[op],
        permissionType: AclPermissionTypes.ALLOW,
      })),
    ),
  });
}

/** The SASL section of `user`, its password in a file (the way operators mount secrets). */
function saslOf(work: string, user: string): Record<string, string> {
  const passwordFile = join(work, `${user}.password`);
  writeFileSync(passwordFile, `${password(user)}\n`, { mode: 0o600 });
  return { mechanism: 'scram-sha-512', username: user, passwordFile };
}

/** `raw` with another kafka.sasl section. */
function asUser(raw: Record<string, unknown>, sasl: Record<string, string>): Record<string, unknown> {
  return { ...raw, kafka: { ...(raw.kafka as Record<string, unknown>), sasl } };
}

/** A raw config (written to a file for the CLI) over fresh topic names. */
function rawConfig(work: string, user: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  const id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  return {
    kafka: {
      brokers: brokers(),
      groupId: `rd-sec-${id}`,
      partitions: PARTITIONS,
      sessionTimeoutMs: 10_000,
      commitIntervalMs: 100,
      maxBatchRecords: 500,
      ssl: { enabled: true, caFile: ca() },
      sasl: saslOf(work, user),
      topics: {
        rankerOutputs: `rd-sec-ro-${id}`,
        impressions: `rd-sec-imp-${id}`,
        pointwise: `rd-sec-pw-${id}`,
        pairwise: `rd-sec-pa-${id}`,
        listwise: `rd-sec-lw-${id}`,
        deadLetter: `rd-sec-dl-${id}`,
        changelog: `rd-sec-cl-${id}`,
        snapshots: `rd-sec-snap-${id}`,
      },
      ...over,
    },
    train: { groupId: `rd-sec-train-${id}`, batchSize: 256, evalRequests: 50 },
    store: { dir: join(work, `store-${id}`) },
    snapshots: {
      dir: join(work, `snapshots-${id}`),
      registry: join(work, `snapshots-${id}`, 'registry.sqlite'),
    },
    metrics: { enabled: false },
  };
}

function writeConfig(work: string, raw: Record<string, unknown>, name: string): string {
  const file = join(work, `${name}.json`);
  writeFileSync(file, JSON.stringify(raw, null, 2));
  return file;
}

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** Runs the CLI to its exit (or until `until` sees its output, then SIGTERM). */
function cli(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; stopWhen?: () => Promise<boolean> } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RANKDISTILL_LOG_LEVEL: 'info', ...opts.env },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `rankdistill ${args.join(' ')} did not exit in ${opts.timeoutMs ?? 180_000} ms\n${err.slice(-3000)}`,
        ),
      );
    }, opts.timeoutMs ?? 180_000);
    let polling = opts.stopWhen !== undefined;
    const poll = async () => {
      while (polling) {
        if (await opts.stopWhen?.().catch(() => false)) {
          child.kill('SIGTERM');
          return;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    void poll();
    child.on('exit', (code) => {
      polling = false;
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

describe('secured broker (SASL_SSL, SCRAM, ACLs)', { timeout: 900_000 }, () => {
  let kafka: Kafka;
  let admin: Admin;
  let work: string;
  let sim: SimFiles;
  const logs: string[] = [];

  before(async () => {
    kafka = adminKafka();
    admin = kafka.admin();
    await admin.connect();
    work = mkdtempSync(join(tmpdir(), 'rd-secured-'));
    sim = await simulateFiles(join(work, 'sim'), 300, 27);
  });
  after(async () => {
    await admin?.disconnect();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** Creates the input topics (as the admin) and produces the simulated inputs. */
  async function inputs(raw: Record<string, unknown>): Promise<Config> {
    const cfg = configSchema.parse(raw);
    const t = cfg.kafka.topics;
    await createTopicsAndWait(admin, [
      { topic: t.rankerOutputs, numPartitions: PARTITIONS, replicationFactor: 1 },
      { topic: t.impressions, numPartitions: PARTITIONS, replicationFactor: 1 },
      { topic: t.snapshots, numPartitions: 1, replicationFactor: 1 },
    ]);
    await produceInputs(kafka, cfg, sim, PARTITIONS);
    return cfg;
  }

  test('labeler (exactly once), subscriber, trainer and replay with only their documented ACLs', async () => {
    const raw = rawConfig(work, 'labeler');
    const cfg = await inputs(raw);
    await grant(admin, aclsForRole('labeler', cfg), 'User:labeler');
    // The labeler, its password from the environment this time (the file is the other path).
    const envRaw = asUser(raw, { mechanism: 'scram-sha-512', username: 'labeler' });
    const envFile = writeConfig(work, envRaw, 'labeler-env');
    const label = await cli(['-c', envFile, 'label'], {
      env: { RANKDISTILL_KAFKA__SASL__PASSWORD: password('labeler') },
      stopWhen: async () => {
        await waitConsumed(admin, cfg, 1_000);
        return true;
      },
    });
    logs.push(label.out, label.err);
    assert.equal(label.code, 0, `label exits 0 on SIGTERM\n${label.err.slice(-3000)}`);
    const labelIds = await assertExactlyExpected(kafka, admin, cfg, sim, assert);
    assert.ok(labelIds > 0);

    // The client library as the subscriber: reads every pointwise label.
    const subCfg = configSchema.parse(
      asUser(raw, { mechanism: 'scram-sha-512', username: 'subscriber', password: password('subscriber') }),
    );
    const group = `label-subscriber-${randomBytes(3).toString('hex')}`;
    await grant(
      admin,
      aclsForRole('subscriber', subCfg, { subscriberGroup: group, subscriberKinds: ['pointwise'] }),
      'User:subscriber',
    );
    const wantPointwise = (await readAll(kafka, admin, [cfg.kafka.topics.pointwise])).length;
    assert.ok(wantPointwise > 0);
    const sub = subscribeLabels({ brokers: brokers(), kind: 'pointwise', groupId: group, config: subCfg });
    let got = 0;
    for await (const _m of sub) {
      if (++got === wantPointwise) break;
    }
    await sub.close();
    assert.equal(got, wantPointwise, 'the subscriber reads every pointwise label');

    // The trainer reads the labels and announces its snapshot.
    const trainRaw = asUser(raw, saslOf(work, 'trainer'));
    const trainCfg = configSchema.parse(trainRaw);
    await grant(admin, aclsForRole('trainer', trainCfg), 'User:trainer');
    const train = await cli(
      [
        '-c',
        writeConfig(work, trainRaw, 'trainer'),
        'train',
        '--kafka',
        '--idle-exit-ms',
        '5000',
        '--out',
        join(work, 'ckpt'),
      ],
      { timeoutMs: 300_000 },
    );
    logs.push(train.out, train.err);
    assert.equal(train.code, 0, `train exits 0\n${train.err.slice(-3000)}`);
    const done = train.out.split('\n').filter((l) => l.includes('"event":"done"'));
    assert.equal(done.length, 1, train.out.slice(-2000));
    assert.ok((JSON.parse(done[0] as string) as { examples: number }).examples > 0, done[0]);

    // Replay rebuilds the labels from the inputs into prefixed topics.
    const prefix = `replay.${randomBytes(3).toString('hex')}.`;
    const replayRaw = asUser(raw, saslOf(work, 'replay'));
    await grant(
      admin,
      aclsForRole('replay', configSchema.parse(replayRaw), { replayTopicPrefix: prefix }),
      'User:replay',
    );
    const replay = await cli(
      [
        '-c',
        writeConfig(work, replayRaw, 'replay'),
        'replay',
        '--to-topics',
        prefix,
        '--state-dir',
        join(work, 'replay-state'),
        '--no-progress',
        '--drain',
      ],
      { timeoutMs: 300_000 },
    );
    logs.push(replay.out, replay.err);
    assert.equal(replay.code, 0, `replay exits 0\n${replay.err.slice(-3000)}`);
    const summary = JSON.parse(replay.out.slice(replay.out.indexOf('{'))) as {
      status: string;
      processed: number;
    };
    assert.equal(summary.status, 'complete', replay.out);
    let inputRecords = 0;
    for (const topic of [cfg.kafka.topics.rankerOutputs, cfg.kafka.topics.impressions]) {
      for (const o of await admin.fetchTopicOffsets(topic)) inputRecords += Number(o.high);
    }
    assert.equal(summary.processed, inputRecords, 'replay read every input record');
    const replayed = await readAll(kafka, admin, [`${prefix}${cfg.kafka.topics.pointwise}`]);
    assert.ok(replayed.length > 0, 'replay wrote pointwise labels');

    // No password in any log line nor in any dead letter.
    const deadLetters = await readAll(kafka, admin, [cfg.kafka.topics.deadLetter]);
    assert.ok(deadLetters.length > 0, 'the run had dead letters to check');
    for (const user of ['labeler', 'trainer', 'replay', 'subscriber']) {
      const p = password(user);
      assert.ok(!logs.some((l) => l.includes(p)), `${user}'s password appears in a log`);
      assert.ok(!deadLetters.some((r) => r.value.includes(p)), `${user}'s password appears in a dead letter`);
    }
    assert.ok(logs.join('').length > 0);
    assert.ok(expectedLabels(cfg, sim).size > 0);
  });

  test('a principal missing one documented ACL gets an error naming it and exits non-zero', async () => {
    const raw = rawConfig(work, 'limited');
    const cfg = await inputs(raw);
    const all = aclsForRole('labeler', cfg);
    const missing = all.find((g) => g.name === cfg.kafka.topics.listwise);
    assert.ok(missing);
    await grant(
      admin,
      all.filter((g) => g !== missing),
      'User:limited',
    );
    const run = await cli(['-c', writeConfig(work, raw, 'limited'), 'label']);
    assert.notEqual(run.code, 0);
    const last = run.err.trim().split('\n').at(-1) ?? '';
    assert.match(last, /KAFKA_AUTHORIZATION_FAILED/, run.err.slice(-3000));
    assert.match(last, new RegExp(`topic '${cfg.kafka.topics.listwise}'`), last);
    assert.match(last, /WRITE/, last);
    assert.match(last, /User:limited/, last);
    assert.match(last, /kafka-acls\.sh .*--topic /, last);
    console.log(`# ${last}`);
  });

  test('a principal missing its transactional-id ACL is told so once the tasks open', async () => {
    const raw = rawConfig(work, 'limited');
    const cfg = await inputs(raw);
    const all = aclsForRole('labeler', cfg);
    await grant(
      admin,
      all.filter((g) => g.resource !== 'transactional-id'),
      'User:limited',
    );
    const run = await cli(['-c', writeConfig(work, raw, 'limited-txn'), 'label']);
    assert.notEqual(run.code, 0);
    const last = run.err.trim().split('\n').at(-1) ?? '';
    assert.match(last, /KAFKA_AUTHORIZATION_FAILED/, run.err.slice(-3000));
    assert.match(last, new RegExp(`transactional-id prefix '${cfg.kafka.groupId}-task-'`), last);
  });

  test('a trainer missing its group ACL is told which group', async () => {
    const raw = asUser(rawConfig(work, 'labeler'), saslOf(work, 'trainer'));
    const cfg = configSchema.parse(raw);
    const t = cfg.kafka.topics;
    await createTopicsAndWait(
      admin,
      [t.pointwise, t.pairwise, t.listwise, t.snapshots].map((topic) => ({
        topic,
        numPartitions: 1,
        replicationFactor: 1,
      })),
    );
    await grant(
      admin,
      aclsForRole('trainer', cfg).filter((g) => g.resource !== 'group'),
      'User:trainer',
    );
    const run = await cli([
      '-c',
      writeConfig(work, raw, 'trainer-no-group'),
      'train',
      '--kafka',
      '--idle-exit-ms',
      '5000',
      '--out',
      join(work, 'ckpt-no-group'),
    ]);
    assert.notEqual(run.code, 0);
    const last = run.err.trim().split('\n').at(-1) ?? '';
    assert.match(last, /KAFKA_AUTHORIZATION_FAILED/, `${run.err.slice(-3000)}\n${run.out.slice(-2000)}`);
    assert.match(last, new RegExp(`READ on group '${cfg.train.groupId}'`), last);
  });

  test('a wrong password exits with an authentication error', async () => {
    const raw = rawConfig(work, 'labeler');
    const bad = asUser(raw, {
      mechanism: 'scram-sha-512',
      username: 'labeler',
      password: 'not-the-password',
    });
    const run = await cli(['-c', writeConfig(work, bad, 'wrong-password'), 'label']);
    assert.notEqual(run.code, 0);
    const last = run.err.trim().split('\n').at(-1) ?? '';
    assert.match(last, /KAFKA_AUTHENTICATION_FAILED/, run.err.slice(-3000));
    assert.match(last, /User:labeler/, last);
    assert.ok(
      !run.err.includes('not-the-password') && !run.out.includes('not-the-password'),
      'the password is not logged',
    );
  });

  test('plaintext to the TLS listener fails with a hint at kafka.ssl', async () => {
    const raw = rawConfig(work, 'labeler');
    const k = raw.kafka as Record<string, unknown>;
    const plain = { ...raw, kafka: { ...k, ssl: { enabled: false } } };
    const run = await cli(['-c', writeConfig(work, plain, 'plaintext'), 'label']);
    assert.notEqual(run.code, 0);
    const last = run.err.trim().split('\n').at(-1) ?? '';
    assert.match(last, /KAFKA_UNAVAILABLE/, run.err.slice(-3000));
    assert.match(last, /kafka\.ssl\.enabled/, last);
  });

  test('rankdistill config shows *** for every secret', async () => {
    const secrets = {
      sasl: `sasl-${randomBytes(8).toString('hex')}`,
      registry: `reg-${randomBytes(8).toString('hex')}`,
      token: `tok-${randomBytes(8).toString('hex')}`,
    };
    const raw = rawConfig(work, 'labeler');
    const k = raw.kafka as Record<string, unknown>;
    const withSecrets = {
      ...raw,
      kafka: {
        ...k,
        sasl: { mechanism: 'scram-sha-512', username: 'labeler', password: secrets.sasl },
        schemaRegistryUrl: 'https://127.0.0.1:8081',
        schemaRegistryAuth: { username: 'u' },
      },
    };
    const file = writeConfig(work, withSecrets, 'secrets');
    const run = await cli(['-c', file, 'config'], {
      env: { RANKDISTILL_KAFKA__SCHEMA_REGISTRY_AUTH__PASSWORD: secrets.registry },
    });
    assert.equal(run.code, 0, run.err);
    const shown = JSON.parse(run.out) as {
      kafka: { sasl: { password: string }; schemaRegistryAuth: { password: string } };
    };
    assert.equal(shown.kafka.sasl.password, '***');
    assert.equal(shown.kafka.schemaRegistryAuth.password, '***');
    for (const s of [secrets.sasl, secrets.registry]) assert.ok(!run.out.includes(s) && !run.err.includes(s));
    // A bearer token next to basic auth is refused, and the error does not quote it either.
    const badRun = await cli(['-c', file, 'config'], {
      env: {
        RANKDISTILL_KAFKA__SCHEMA_REGISTRY_AUTH__PASSWORD: secrets.registry,
        RANKDISTILL_KAFKA__SCHEMA_REGISTRY_AUTH__BEARER_TOKEN: secrets.token,
      },
    });
    assert.notEqual(badRun.code, 0);
    assert.match(badRun.err, /bearer token/);
    for (const s of Object.values(secrets))
      assert.ok(!badRun.out.includes(s) && !badRun.err.includes(s), `${s} leaked`);
  });
});
