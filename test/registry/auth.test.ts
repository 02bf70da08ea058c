// The schema registry client with kafka.schemaRegistryAuth: basic auth and bearer headers on every
// request, and https with a private CA (the global fetch cannot take one). The server is a small
// https endpoint on 127.0.0.1 answering POST /subjects/<s>/versions as Confluent documents it, with
// a throwaway CA and certificate made by openssl.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '../../src/config/index.ts';
import { isRankdistillError } from '../../src/errors.ts';
import { registryTransport } from '../../src/kafka/security.ts';
import { SchemaRegistryClient } from '../../src/registry/client.ts';

const SCHEMA = '{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}';

describe('schema registry credentials and CA', () => {
  let dir: string;
  let server: Server;
  let url: string;
  const seen: (string | undefined)[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rd-registry-auth-'));
    const sh = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    sh([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=test CA',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
    ]);
    sh([
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=127.0.0.1',
      '-keyout',
      'srv.key',
      '-out',
      'srv.csr',
    ]);
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
    sh([
      'x509',
      '-req',
      '-in',
      'srv.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      'ext.cnf',
      '-out',
      'srv.pem',
    ]);
    server = createServer(
      { key: readFileSync(join(dir, 'srv.key')), cert: readFileSync(join(dir, 'srv.pem')) },
      (req, res) => {
        seen.push(req.headers.authorization);
        req.resume();
        req.on('end', () => {
          const ok =
            req.headers.authorization === `Basic ${Buffer.from('reg-user:reg-pass').toString('base64')}` ||
            req.headers.authorization === 'Bearer tok-123';
          res.writeHead(ok ? 200 : 401, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
          res.end(JSON.stringify(ok ? { id: 7 } : { error_code: 40101, message: 'Unauthorized' }));
        });
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((r) => server?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const client = (auth: Record<string, unknown>) => {
    const t = registryTransport(
      parseConfig({ kafka: { schemaRegistryAuth: auth } }).kafka.schemaRegistryAuth,
    );
    return new SchemaRegistryClient({
      url,
      retries: 0,
      headers: t.headers,
      ...(t.fetch ? { fetch: t.fetch } : {}),
    });
  };

  test('basic auth from a password file, over https with the private CA', async () => {
    const pw = join(dir, 'pw');
    writeFileSync(pw, 'reg-pass\n');
    const id = await client({
      username: 'reg-user',
      passwordFile: pw,
      caFile: join(dir, 'ca.pem'),
    }).registerSchema('s-value', SCHEMA);
    assert.equal(id, 7);
    assert.equal(seen.at(-1), `Basic ${Buffer.from('reg-user:reg-pass').toString('base64')}`);
  });

  test('a bearer token from a file', async () => {
    const tok = join(dir, 'tok');
    writeFileSync(tok, 'tok-123\n');
    assert.equal(
      await client({ bearerTokenFile: tok, caFile: join(dir, 'ca.pem') }).registerSchema('s-value', SCHEMA),
      7,
    );
    assert.equal(seen.at(-1), 'Bearer tok-123');
  });

  test('a wrong password is a 401 the error reports; the system CAs refuse the private certificate', async () => {
    await assert.rejects(
      client({ username: 'reg-user', password: 'nope', caFile: join(dir, 'ca.pem') }).registerSchema(
        's-value',
        SCHEMA,
      ),
      (e) =>
        isRankdistillError(e, 'SCHEMA_REGISTRY_FAILED') &&
        /401/.test(e.message) &&
        !e.message.includes('nope'),
    );
    const before = seen.length;
    await assert.rejects(
      client({ username: 'reg-user', password: 'reg-pass' }).registerSchema('s-value', SCHEMA),
      (e) => isRankdistillError(e, 'SCHEMA_REGISTRY_FAILED'),
    );
    assert.equal(seen.length, before, 'no request got through without trusting the CA');
  });
});
