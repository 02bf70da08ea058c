// Security configuration without a broker: the options validate, secrets are redacted wherever a
// config is shown, files are read into the kafkajs and registry options, the documented ACLs are the
// ones the code grants, and access failures are recognised through kafkajs's wrappers.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig, parseConfig, redactSecrets } from '../../src/config/index.ts';
import { ConfigError } from '../../src/errors.ts';
import { explainKafkaError, kafkaAccessFailure } from '../../src/kafka/access.ts';
import { ACL_ROLES, aclsForRole, kafkaAclsCommands } from '../../src/kafka/acls.ts';
import { kafkaSecurity, registryTransport } from '../../src/kafka/security.ts';

const dir = mkdtempSync(join(tmpdir(), 'rd-security-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('security config', () => {
  test('sasl needs a username and exactly one password source; TLS files need ssl.enabled', () => {
    assert.throws(
      () => parseConfig({ kafka: { sasl: { mechanism: 'scram-sha-512', password: 'x' } } }),
      /needs a username/,
    );
    assert.throws(
      () =>
        parseConfig({
          kafka: { sasl: { mechanism: 'plain', username: 'u', password: 'x', passwordFile: '/f' } },
        }),
      /exactly one of password, passwordFile/,
    );
    assert.throws(
      () => parseConfig({ kafka: { sasl: { mechanism: 'oauthbearer' } } }),
      /oauthTokenFile, oauthTokenCommand/,
    );
    assert.throws(() => parseConfig({ kafka: { ssl: { caFile: '/ca.pem' } } }), /kafka.ssl.enabled is false/);
    const ok = parseConfig({
      kafka: {
        ssl: { enabled: true },
        sasl: { mechanism: 'scram-sha-256', username: 'u', passwordFile: '/f' },
      },
    });
    assert.equal(ok.kafka.sasl.mechanism, 'scram-sha-256');
    assert.equal(parseConfig({}).kafka.sasl.mechanism, 'none');
  });

  test('secrets show as *** in the printed config and are never quoted by config errors', () => {
    const secret = 'hunter2-very-secret';
    const cfg = loadConfig({
      env: {
        RANKDISTILL_KAFKA__SASL__MECHANISM: 'plain',
        RANKDISTILL_KAFKA__SASL__USERNAME: 'u',
        RANKDISTILL_KAFKA__SASL__PASSWORD: secret,
        RANKDISTILL_KAFKA__SCHEMA_REGISTRY_AUTH__BEARER_TOKEN: `${secret}-token`,
      },
    });
    assert.equal(cfg.kafka.sasl.password, secret, 'the loaded config keeps the value for the client');
    const shown = JSON.stringify(redactSecrets(cfg));
    assert.ok(!shown.includes(secret));
    assert.equal(redactSecrets(cfg).kafka.sasl.password, '***');
    assert.equal(redactSecrets(cfg).kafka.schemaRegistryAuth.bearerToken, '***');
    // An invalid secret (and an unknown key under sasl) must not be echoed.
    for (const env of [
      {
        RANKDISTILL_KAFKA__SASL__PASSWORD: secret,
        RANKDISTILL_KAFKA__SASL__USERNAME: 'u',
        RANKDISTILL_KAFKA__SASL__MECHANISM: 'plain',
        RANKDISTILL_KAFKA__SASL__PASSWORD_FILE: '/f',
      },
      { RANKDISTILL_KAFKA__SCHEMA_REGISTRY_AUTH__PASSWORD: secret },
    ]) {
      const e = (() => {
        try {
          loadConfig({ env });
        } catch (err) {
          return err;
        }
        return undefined;
      })();
      assert.ok(e instanceof ConfigError, 'the config is refused');
      assert.ok(!e.message.includes(secret), e.message);
      assert.ok(!JSON.stringify(e.details).includes(secret));
    }
  });

  test('kafkaSecurity reads the CA, the password file and oauth tokens', async () => {
    const ca = file('ca.pem', '-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n');
    const pw = file('pw', 'pa55word\n');
    const cfg = parseConfig({
      kafka: {
        ssl: { enabled: true, caFile: ca },
        sasl: { mechanism: 'scram-sha-512', username: 'lab', passwordFile: pw },
      },
    });
    const s = kafkaSecurity(cfg.kafka);
    assert.deepEqual(s.ssl, { rejectUnauthorized: true, ca: [readFileSync(ca, 'utf8')] });
    assert.deepEqual(s.sasl, { mechanism: 'scram-sha-512', username: 'lab', password: 'pa55word' });
    assert.deepEqual(kafkaSecurity(parseConfig({}).kafka), {});
    const tok = file('tok', 'tok-1\n');
    const viaFile = kafkaSecurity(
      parseConfig({ kafka: { sasl: { mechanism: 'oauthbearer', oauthTokenFile: tok } } }).kafka,
    );
    const provider = (viaFile.sasl as { oauthBearerProvider: () => Promise<{ value: string }> })
      .oauthBearerProvider;
    assert.equal((await provider()).value, 'tok-1');
    writeFileSync(tok, 'tok-2\n');
    assert.equal((await provider()).value, 'tok-2', 're-read at every authentication');
    const viaCmd = kafkaSecurity(
      parseConfig({ kafka: { sasl: { mechanism: 'oauthbearer', oauthTokenCommand: 'echo tok-cmd' } } }).kafka,
    );
    assert.equal(
      (await (viaCmd.sasl as { oauthBearerProvider: () => Promise<{ value: string }> }).oauthBearerProvider())
        .value,
      'tok-cmd',
    );
    const failing = kafkaSecurity(
      parseConfig({ kafka: { sasl: { mechanism: 'oauthbearer', oauthTokenCommand: 'exit 3' } } }).kafka,
    );
    await assert.rejects(
      (failing.sasl as { oauthBearerProvider: () => Promise<unknown> }).oauthBearerProvider(),
      /oauthTokenCommand failed/,
    );
    assert.throws(
      () =>
        kafkaSecurity(
          parseConfig({
            kafka: { sasl: { mechanism: 'plain', username: 'u', passwordFile: join(dir, 'missing') } },
          }).kafka,
        ),
      /cannot read kafka.sasl.passwordFile/,
    );
  });

  test('registry credentials become an authorization header', () => {
    const basic = registryTransport(
      parseConfig({ kafka: { schemaRegistryAuth: { username: 'u', password: 'p' } } }).kafka
        .schemaRegistryAuth,
    );
    assert.deepEqual(basic.headers(), { authorization: `Basic ${Buffer.from('u:p').toString('base64')}` });
    assert.equal(basic.fetch, undefined);
    const tokenFile = file('bearer', 'abc\n');
    const bearer = registryTransport(
      parseConfig({
        kafka: { schemaRegistryAuth: { bearerTokenFile: tokenFile, caFile: file('rca.pem', 'x') } },
      }).kafka.schemaRegistryAuth,
    );
    assert.deepEqual(bearer.headers(), { authorization: 'Bearer abc' });
    assert.equal(typeof bearer.fetch, 'function', 'a private CA gets its own fetch');
    assert.deepEqual(registryTransport(parseConfig({}).kafka.schemaRegistryAuth).headers(), {});
    assert.throws(
      () =>
        parseConfig({ kafka: { schemaRegistryAuth: { username: 'u', password: 'p', bearerToken: 't' } } }),
      /not both/,
    );
  });
});

describe('ACLs', () => {
  test('docs/OPERATIONS.md lists exactly the kafka-acls commands of every role (default config)', () => {
    const doc = readFileSync(new URL('../../docs/OPERATIONS.md', import.meta.url), 'utf8');
    const documented = doc.split('\n').filter((l) => l.startsWith('kafka-acls.sh '));
    const expected = ACL_ROLES.flatMap((role) =>
      kafkaAclsCommands(aclsForRole(role, parseConfig({})), `User:${role}`),
    );
    assert.deepEqual(
      documented,
      expected,
      'regenerate with `rankdistill acls --role <role> --principal User:<role>`',
    );
  });

  test('grants follow the config: names, and CREATE only while the labeler creates topics', () => {
    const cfg = parseConfig({ kafka: { groupId: 'g1', createTopics: false, topics: { pointwise: 'pw' } } });
    const labeler = aclsForRole('labeler', cfg);
    assert.ok(labeler.every((g) => !g.operations.includes('CREATE')));
    assert.deepEqual(labeler.find((g) => g.name === 'pw')?.operations, ['WRITE']);
    assert.ok(
      labeler.some(
        (g) => g.resource === 'transactional-id' && g.name === 'g1-task-' && g.pattern === 'prefixed',
      ),
    );
    assert.ok(aclsForRole('labeler', parseConfig({})).some((g) => g.operations.includes('CREATE')));
    assert.deepEqual(
      aclsForRole('trainer', parseConfig({})).find((g) => g.name === 'student-snapshots')?.operations,
      ['WRITE'],
    );
  });

  test('access failures are found through kafkajs wrappers and named', async () => {
    const refused = Object.assign(new Error('Not authorized to access group'), {
      type: 'GROUP_AUTHORIZATION_FAILED',
    });
    const wrapped = Object.assign(new Error('retries exceeded'), {
      name: 'KafkaJSNumberOfRetriesExceeded',
      cause: refused,
    });
    assert.deepEqual(kafkaAccessFailure(wrapped), {
      kind: 'authorization',
      resource: 'group',
      type: 'GROUP_AUTHORIZATION_FAILED',
    });
    const aggregate = Object.assign(new Error('Topic creation errors'), {
      errors: [Object.assign(new Error('x'), { type: 'TOPIC_AUTHORIZATION_FAILED' })],
    });
    assert.equal(kafkaAccessFailure(aggregate)?.kind, 'authorization');
    assert.equal(kafkaAccessFailure(new Error('other')), undefined);
    const cfg = parseConfig({ kafka: { sasl: { mechanism: 'plain', username: 'trainer', password: 'p' } } });
    const e = (await explainKafkaError(wrapped, {
      kafka: cfg.kafka,
      grants: aclsForRole('trainer', cfg),
      role: 'trainer',
    })) as Error & { code: string };
    assert.equal(e.code, 'KAFKA_AUTHORIZATION_FAILED');
    assert.match(
      e.message,
      /User:trainer \(the trainer\).*READ on group 'rankdistill-trainer'.*kafka-acls\.sh .*--group rankdistill-trainer/,
    );
    const auth = Object.assign(new Error('SASL PLAIN authentication failed'), {
      name: 'KafkaJSSASLAuthenticationError',
    });
    const a = (await explainKafkaError(auth, { kafka: cfg.kafka })) as Error & { code: string };
    assert.equal(a.code, 'KAFKA_AUTHENTICATION_FAILED');
    assert.ok(!a.message.includes('"p"'));
  });
});
