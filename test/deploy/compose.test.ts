// The deployment files, checked without a Docker engine: docker-compose.yml parses and is valid
// against the Compose Specification's JSON schema (vendored in test/deploy/vendor/, checked by ajv:
// this always runs); `docker compose config` / `docker-compose config` accepts it too where one of
// them is installed (skipped, and said so, where neither is); every rankdistill service runs a real
// CLI command with real options; every RANKDISTILL_* variable (compose and Dockerfile) maps through
// envPath onto a real config option with a valid value; the labeler can scale (no container name,
// no fixed host port, /health check); Kafka is a KRaft node fit for transactions; topic-init
// creates exactly the topics of the config, co-partitioned, with a compacted changelog.
import assert from 'node:assert/strict';
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { Ajv } from 'ajv';
import draft7 from 'ajv/dist/refs/json-schema-draft-07.json' with { type: 'json' };
import type { Command } from 'commander';
import YAML from 'yaml';
import { buildProgram } from '../../src/cli/main.ts';
import { applyEnv, ENV_PREFIX, envPath, parseConfig } from '../../src/config/index.ts';
import { aclsForRole, kafkaAclsCommands } from '../../src/kafka/acls.ts';
import { registryPathOf } from '../../src/snapshots/registry.ts';

const ROOT = new URL('../../', import.meta.url);
const COMPOSE_FILE = new URL('docker-compose.yml', ROOT).pathname;
const read = (name: string) => readFileSync(new URL(name, ROOT), 'utf8');

type Env = Record<string, string>;
interface Service {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, unknown>;
  ports?: unknown[];
  expose?: unknown[];
  container_name?: string;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[] | string; disable?: boolean };
  volumes?: string[];
  profiles?: string[];
}

/** `${VAR:-default}` / `${VAR}` interpolation as compose does it, from an empty environment. */
function interpolate(v: unknown): string {
  return String(v).replace(
    /\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}/g,
    (_m, _name: string, def?: string) => def ?? '',
  );
}

const compose = YAML.parse(read('docker-compose.yml'), { merge: true }) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};
const services = compose.services;

function service(name: string): Service {
  const s = services[name];
  assert.ok(s, `docker-compose.yml has no service ${name}`);
  return s;
}

function envOf(s: Service): Env {
  return Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, interpolate(v)]));
}

function argv(s: Service): string[] {
  const c = s.command ?? [];
  return (Array.isArray(c) ? c : c.split(/\s+/)).map(interpolate);
}

/** The rankdistill services: the ones built from this repository's Dockerfile. */
const appServices = Object.entries(services).filter(([, s]) => s.build !== undefined);

/** Compose interpolation over a whole document (strings only), as compose does before validating. */
function interpolateAll(v: unknown): unknown {
  if (typeof v === 'string') return interpolate(v).replaceAll('$$', '$');
  if (Array.isArray(v)) return v.map(interpolateAll);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, interpolateAll(x)]));
  }
  return v;
}

const composeSchema = JSON.parse(read('test/deploy/vendor/compose-spec.json')) as object;
const ajv = new Ajv({ allErrors: true, strict: false });
// The schema names its meta-schema "https://json-schema.org/draft-07/schema"; ajv bundles draft-07
// as "http://json-schema.org/draft-07/schema#". Same document: register it under the other name too.
ajv.addMetaSchema({ ...draft7, $id: 'https://json-schema.org/draft-07/schema' });
const validateCompose = ajv.compile(composeSchema);

function schemaErrors(doc: unknown): string[] {
  if (validateCompose(doc)) return [];
  return (validateCompose.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}

/** The compose CLI that is installed: the Docker plugin (`docker compose`) or docker-compose v1/v2. */
function composeTool(): string[] | undefined {
  for (const cmd of [['docker', 'compose'], ['docker-compose']]) {
    const r = spawnSync(cmd[0] as string, [...cmd.slice(1), 'version'], { encoding: 'utf8' });
    if (r.error === undefined && r.status === 0) return cmd;
  }
  return undefined;
}

describe('docker-compose.yml', () => {
  test('the Compose Specification schema accepts it (ajv, no Docker needed)', () => {
    const doc = interpolateAll(YAML.parse(read('docker-compose.yml'), { merge: true }));
    assert.deepEqual(schemaErrors(doc), []);
  });

  test('the schema check has teeth: a misspelt key or a wrong type is rejected', () => {
    const doc = interpolateAll(YAML.parse(read('docker-compose.yml'), { merge: true })) as {
      services: Record<string, Record<string, unknown>>;
    };
    const misspelt = structuredClone(doc);
    (misspelt.services.labeler as Record<string, unknown>).comand = ['label'];
    assert.ok(
      schemaErrors(misspelt).some((e) => e.includes('/services/labeler')),
      'an unknown service key is an error',
    );
    const wrongType = structuredClone(doc);
    (wrongType.services.kafka as Record<string, unknown>).volumes = 'kafka-data:/var/lib/kafka/data';
    assert.notDeepEqual(schemaErrors(wrongType), [], 'volumes must be a list');
  });

  test('`docker compose config` accepts it, with and without the sim profile (where installed)', (t) => {
    const tool = composeTool();
    if (tool === undefined) {
      t.skip('neither `docker compose` nor docker-compose is installed; the schema test above still ran');
      return;
    }
    for (const extra of [[], ['--profile', 'sim'], ['--profile', 'secured']]) {
      const r: SpawnSyncReturns<string> = spawnSync(
        tool[0] as string,
        [...tool.slice(1), '-f', COMPOSE_FILE, ...extra, 'config', '-q'],
        {
          encoding: 'utf8',
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
        },
      );
      assert.equal(
        r.status,
        0,
        `${tool.join(' ')} config ${extra.join(' ')} rejected the file:\n${r.stderr}`,
      );
    }
  });

  test('the stack: kafka, topic-init, labeler, trainer, and the simulator behind the "sim" profile', () => {
    assert.deepEqual(Object.keys(services).sort(), [
      'kafka',
      'kafka-secured',
      'labeler',
      'labeler-secured',
      'secured-init',
      'simulator',
      'topic-init',
      'trainer',
      'trainer-secured',
    ]);
    assert.deepEqual(service('simulator').profiles, ['sim']);
    for (const name of ['kafka-secured', 'secured-init', 'labeler-secured', 'trainer-secured']) {
      assert.deepEqual(service(name).profiles, ['secured'], `${name} runs only with --profile secured`);
    }
    for (const name of ['kafka', 'topic-init', 'labeler', 'trainer']) {
      assert.equal(service(name).profiles, undefined, `${name} runs by default`);
    }
    assert.deepEqual(
      appServices.map(([n]) => n).sort(),
      ['labeler', 'labeler-secured', 'simulator', 'trainer', 'trainer-secured'],
      'the rankdistill roles are built from the Dockerfile',
    );
  });

  test("every rankdistill service runs a CLI command with that command's options", async () => {
    const program = await buildProgram();
    for (const [name, s] of appServices) {
      const args = argv(s);
      let cmd: Command = program;
      let i = 0;
      // Walk sub-commands (`snapshots list` …) as far as they go.
      for (; i < args.length; i++) {
        const sub = cmd.commands.find((c) => c.name() === args[i]);
        if (sub === undefined) break;
        cmd = sub;
      }
      assert.notEqual(cmd, program, `${name}: "${args[0]}" is not a rankdistill command`);
      const known = new Set([...cmd.options, ...program.options].flatMap((o) => [o.long, o.short]));
      const given = args.slice(i).filter((a) => a.startsWith('-'));
      for (const flag of given) {
        assert.ok(known.has(flag.split('=')[0]), `${name}: ${cmd.name()} has no option ${flag}`);
      }
      for (const o of cmd.options.filter((x) => x.mandatory && x.defaultValue === undefined)) {
        assert.ok(given.includes(o.long ?? ''), `${name}: ${cmd.name()} needs ${o.long}`);
      }
    }
  });

  test('every RANKDISTILL_* variable is a real config option with a valid value (compose and Dockerfile)', () => {
    const dockerEnv: Env = {};
    for (const m of read('Dockerfile').matchAll(/\b(RANKDISTILL_[A-Z0-9_]+)=(\S+)/g)) {
      dockerEnv[m[1] as string] = m[2] as string;
    }
    assert.ok(Object.keys(dockerEnv).length > 0, 'the Dockerfile sets config defaults for the container');
    const sources: [string, Env][] = [
      ['Dockerfile', dockerEnv],
      ...appServices.map(([n, s]): [string, Env] => [n, { ...dockerEnv, ...envOf(s) }]),
    ];
    let checked = 0;
    for (const [where, env] of sources) {
      const names = Object.keys(env).filter((k) => k.startsWith(ENV_PREFIX));
      // Unknown names and bad values both fail here: the schema's objects are strict.
      const cfg = parseConfig(applyEnv({}, env), `${where} environment`) as unknown as Record<
        string,
        unknown
      >;
      for (const k of names) {
        const path = envPath(k.slice(ENV_PREFIX.length));
        let node: unknown = cfg;
        for (const seg of path) {
          assert.ok(
            node !== null && typeof node === 'object' && seg in node,
            `${where}: ${k} → ${path.join('.')}`,
          );
          node = (node as Record<string, unknown>)[seg];
        }
        assert.ok(
          node === null || typeof node !== 'object' || Array.isArray(node),
          `${where}: ${k} names the section ${path.join('.')}, not an option`,
        );
        checked++;
      }
    }
    assert.ok(checked >= 10, `checked ${checked} variables`);
    // Sanity: the mapping really is the one the services read.
    const labeler = parseConfig(applyEnv({}, { ...dockerEnv, ...envOf(service('labeler')) }));
    assert.deepEqual(labeler.kafka.brokers, ['kafka:9092']);
    assert.equal(labeler.kafka.createTopics, false);
    assert.equal(labeler.kafka.partitions, 6);
  });

  test('the labeler scales: no container name, no fixed host port, health from /health on its metrics port', () => {
    const s = service('labeler');
    assert.deepEqual(argv(s), ['label']);
    assert.equal(s.container_name, undefined);
    for (const p of s.ports ?? []) {
      // "9464" (container port only) scales; "8080:9464" or {published: 8080} pins a host port.
      const published =
        typeof p === 'object' && p !== null
          ? (p as { published?: unknown }).published
          : /^(?:[\d.]+:)?(\d+(?:-\d+)?):\d+/.exec(String(p))?.[1];
      assert.equal(published, undefined, `a fixed host port (${JSON.stringify(p)}) cannot scale`);
    }
    const port = parseConfig(applyEnv({}, envOf(s))).metrics.port;
    assert.deepEqual(s.expose, [String(port)]);
    const check = [s.healthcheck?.test ?? []].flat().join(' ');
    assert.match(check, new RegExp(`127\\.0\\.0\\.1:${port}/health`));
    assert.equal(s.depends_on?.['topic-init']?.condition, 'service_completed_successfully');
    for (const [name, svc] of Object.entries(services)) {
      assert.equal(
        svc.container_name,
        undefined,
        `${name}: container_name blocks scaling and parallel stacks`,
      );
    }
  });

  test('kafka: apache/kafka 4.x in KRaft mode, transactions possible on one node, health-checked', () => {
    const s = service('kafka');
    assert.match(
      s.image ?? '',
      /^apache\/kafka:4\.\d+\.\d+$/,
      'the official image of the default broker line (scripts/kafka-local.sh, docs/OPERATIONS.md)',
    );
    const env = envOf(s);
    assert.deepEqual(env.KAFKA_PROCESS_ROLES?.split(',').sort(), ['broker', 'controller']);
    assert.equal(env.KAFKA_CONTROLLER_QUORUM_VOTERS, `${env.KAFKA_NODE_ID}@kafka:9093`);
    assert.match(env.KAFKA_ADVERTISED_LISTENERS ?? '', /PLAINTEXT:\/\/kafka:9092/);
    assert.equal(env.KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR, '1');
    assert.equal(env.KAFKA_TRANSACTION_STATE_LOG_MIN_ISR, '1');
    assert.equal(env.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR, '1');
    assert.equal(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE, 'false');
    const defaults = parseConfig({});
    assert.ok(Number(env.KAFKA_TRANSACTION_MAX_TIMEOUT_MS) >= defaults.kafka.transactionTimeoutMs);
    assert.match(env.CLUSTER_ID ?? '', /^[A-Za-z0-9_-]{22}$/, 'a base64url UUID');
    assert.ok(s.healthcheck?.test, 'kafka has a health check');
    assert.ok(
      s.volumes?.some((v) => v.endsWith(':/var/lib/kafka/data')),
      'the log survives a restart',
    );
    assert.equal(service('topic-init').depends_on?.kafka?.condition, 'service_healthy');
  });

  test('topic-init creates exactly the configured topics: co-partitioned, compacted changelog', () => {
    const s = service('topic-init');
    assert.equal(s.image, service('kafka').image, 'the same image (kafka-topics.sh)');
    const script = argv(s).join('\n');
    assert.match(script, /--if-not-exists/, 're-running the job is harmless');
    const created = new Map<string, { partitions: string; configs: string[] }>();
    for (const m of script.matchAll(/^create (\S+) (\S+)(.*)$/gm)) {
      created.set(m[1] as string, {
        partitions: m[2] as string,
        configs: (m[3] as string).trim().split(/\s+/).filter(Boolean),
      });
    }
    const topics = parseConfig(applyEnv({}, envOf(service('labeler')))).kafka.topics;
    assert.deepEqual(
      [...created.keys()].sort(),
      Object.values(topics).sort(),
      'one create per configured topic',
    );
    const partitioned = [
      topics.rankerOutputs,
      topics.impressions,
      topics.pointwise,
      topics.pairwise,
      topics.listwise,
      topics.deadLetter,
      topics.changelog,
    ];
    for (const t of partitioned) {
      assert.equal(created.get(t)?.partitions, '"$$PARTITIONS"', `${t}: the shared partition count`);
    }
    assert.equal(envOf(s).PARTITIONS, envOf(service('labeler')).RANKDISTILL_KAFKA__PARTITIONS);
    assert.ok(
      created.get(topics.changelog)?.configs.includes('cleanup.policy=compact'),
      'the changelog is compacted',
    );
    for (const [t, c] of created) {
      if (t !== topics.changelog)
        assert.ok(!c.configs.includes('cleanup.policy=compact'), `${t} is not compacted`);
    }
  });

  test('the trainer keeps its snapshots on a named volume; every long-running service is health-checked', () => {
    const s = service('trainer');
    const env = parseConfig(applyEnv({}, envOf(s)));
    const mount = s.volumes?.find((v) => v.split(':')[1] === env.snapshots.dir);
    assert.ok(mount, `a volume at ${env.snapshots.dir}`);
    assert.ok(Object.keys(compose.volumes ?? {}).includes(mount.split(':')[0] as string), 'a named volume');
    assert.ok(
      registryPathOf(env.snapshots).startsWith(`${env.snapshots.dir}/`),
      'the registry lives with the snapshots',
    );
    const args = argv(s);
    assert.equal(args[args.indexOf('--out') + 1], env.snapshots.dir, 'the trainer writes onto the volume');
    for (const name of ['kafka', 'labeler', 'trainer']) {
      assert.ok(service(name).healthcheck?.test, `${name} has a health check`);
    }
  });

  test('the secured profile grants the labeler and trainer exactly their documented ACLs', () => {
    const script = String((service('secured-init').command as string[])[0]);
    const src = script.split('\n').map((l) => l.trim());
    const calls: string[] = [];
    for (let i = 0; i < src.length; i++) {
      const loop = /^for t in (.+); do$/.exec(src[i] ?? '');
      if (loop) {
        for (const t of (loop[1] ?? '').split(/\s+/)) calls.push((src[i + 1] ?? '').replace('$$t', t));
        i += 2;
      } else calls.push(src[i] ?? '');
    }
    const granted = calls.filter((l) => l.startsWith('acl ')).map((l) => l.slice('acl '.length));
    // The compose labeler does not create topics (topic-init's job): no Create.
    const cfg = parseConfig({ kafka: { createTopics: false } });
    const prefix = 'kafka-acls.sh --bootstrap-server "$BROKERS" --command-config admin.properties --add ';
    const documented = (['labeler', 'trainer'] as const).flatMap((role) =>
      kafkaAclsCommands(aclsForRole(role, cfg), `User:${role}`).map((c) => c.slice(prefix.length)),
    );
    assert.deepEqual(granted.sort(), documented.sort());
    for (const name of ['labeler-secured', 'trainer-secured']) {
      const env = envOf(service(name));
      assert.equal(env.RANKDISTILL_KAFKA__SSL__ENABLED, 'true', name);
      assert.equal(env.RANKDISTILL_KAFKA__SASL__MECHANISM, 'scram-sha-512', name);
      assert.equal(env.RANKDISTILL_KAFKA__CREATE_TOPICS, 'false', name);
    }
  });
});

describe('Dockerfile and .dockerignore', () => {
  test('the image runs the CLI as an unprivileged user and carries what the CLI needs', () => {
    const df = read('Dockerfile');
    assert.match(df, /^FROM node:20[\w.-]*/m, 'Node 20, as package.json engines');
    assert.match(df, /^ENTRYPOINT \["node", "bin\/rankdistill\.mjs"\]/m);
    assert.match(df, /^USER node$/m);
    assert.match(df, /npm ci --omit=dev/);
    for (const dir of ['bin', 'schemas']) assert.match(df, new RegExp(`^COPY ${dir} `, 'm'));
    assert.match(df, /^COPY --from=build \/app\/dist \.\/dist$/m, 'the image runs the compiled build');
    assert.match(df, /^HEALTHCHECK .*\/health/ms);
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const needed of ['bin', 'src', 'schemas', 'package.json', 'package-lock.json']) {
      assert.ok(!ignored.includes(needed), `.dockerignore must not exclude ${needed}`);
    }
    assert.ok(ignored.includes('node_modules'), 'host node_modules (native builds) stay out of the image');
  });
});
