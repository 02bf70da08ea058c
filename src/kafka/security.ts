/**
 * TLS and SASL of the Kafka clients, and the credentials and CA of the schema registry, from the
 * `kafka.ssl`, `kafka.sasl` and `kafka.schemaRegistryAuth` config sections. Secrets are read from
 * their files here, at connection time, and never logged.
 *
 * @example
 * const kafka = new Kafka({ brokers, ...kafkaSecurity(config.kafka) });
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import type { KafkaConfig as KafkajsConfig, SASLOptions } from 'kafkajs';
import type { KafkaConfig } from '../config/schema.ts';
import { errorMessage, RankdistillError } from '../errors.ts';

/** Contents of a secret or certificate file; a missing file is a CONFIG_INVALID naming the option. */
function readOption(file: string, option: string, trim: boolean): string {
  try {
    const text = readFileSync(file, 'utf8');
    return trim ? text.replace(/\r?\n$/, '') : text;
  } catch (cause) {
    throw new RankdistillError('CONFIG_INVALID', `cannot read ${option} ${file}: ${errorMessage(cause)}`, {
      cause,
      details: { option, file },
    });
  }
}

/** The current OAUTHBEARER token: the file's contents or the command's stdout. */
async function oauthToken(sasl: KafkaConfig['sasl']): Promise<string> {
  if (sasl.oauthTokenFile !== undefined) {
    return readOption(sasl.oauthTokenFile, 'kafka.sasl.oauthTokenFile', true).trim();
  }
  const command = sasl.oauthTokenCommand as string;
  return new Promise((resolve, reject) => {
    execFile('/bin/sh', ['-c', command], { timeout: 30_000, maxBuffer: 1 << 20 }, (err, stdout) => {
      const token = stdout.trim();
      if (err || token === '') {
        // The command's output may be a token: never quoted in the error.
        reject(
          new RankdistillError(
            'KAFKA_AUTHENTICATION_FAILED',
            `kafka.sasl.oauthTokenCommand failed (${err ? errorMessage(err).split('\n')[0] : 'printed nothing'})`,
          ),
        );
      } else resolve(token);
    });
  });
}

/**
 * The `ssl` and `sasl` options of a kafkajs client (both absent for a plaintext, open cluster).
 *
 * @throws RankdistillError CONFIG_INVALID when a configured file cannot be read.
 * @example
 * new Kafka({ clientId: 'x', brokers: cfg.brokers, ...kafkaSecurity(cfg) });
 */
export function kafkaSecurity(cfg: Pick<KafkaConfig, 'ssl' | 'sasl'>): Pick<KafkajsConfig, 'ssl' | 'sasl'> {
  const out: Pick<KafkajsConfig, 'ssl' | 'sasl'> = {};
  const s = cfg.ssl;
  if (s.enabled) {
    out.ssl = {
      rejectUnauthorized: s.rejectUnauthorized,
      ...(s.caFile === undefined ? {} : { ca: [readOption(s.caFile, 'kafka.ssl.caFile', false)] }),
      ...(s.certFile === undefined ? {} : { cert: readOption(s.certFile, 'kafka.ssl.certFile', false) }),
      ...(s.keyFile === undefined ? {} : { key: readOption(s.keyFile, 'kafka.ssl.keyFile', false) }),
      ...(s.servername === undefined ? {} : { servername: s.servername }),
    };
  }
  const a = cfg.sasl;
  if (a.mechanism === 'oauthbearer') {
    out.sasl = {
      mechanism: 'oauthbearer',
      oauthBearerProvider: async () => ({ value: await oauthToken(a) }),
    };
  } else if (a.mechanism !== 'none') {
    const password = a.password ?? readOption(a.passwordFile as string, 'kafka.sasl.passwordFile', true);
    out.sasl = { mechanism: a.mechanism, username: a.username as string, password } as SASLOptions;
  }
  return out;
}

/** What the schema registry client needs beyond its URL. */
export interface RegistryTransport {
  /** Authorization header, computed per request (token files are re-read). */
  headers: () => Record<string, string>;
  /** A fetch trusting the configured CA, or undefined for the global fetch. */
  fetch: typeof fetch | undefined;
}

/**
 * Headers and fetch of the schema registry client from `kafka.schemaRegistryAuth`.
 *
 * @example
 * const t = registryTransport(config.kafka.schemaRegistryAuth);
 */
export function registryTransport(auth: KafkaConfig['schemaRegistryAuth']): RegistryTransport {
  const headers = (): Record<string, string> => {
    if (auth.username !== undefined) {
      const password =
        auth.password ??
        readOption(auth.passwordFile as string, 'kafka.schemaRegistryAuth.passwordFile', true);
      return { authorization: `Basic ${Buffer.from(`${auth.username}:${password}`).toString('base64')}` };
    }
    const token =
      auth.bearerToken ??
      (auth.bearerTokenFile === undefined
        ? undefined
        : readOption(auth.bearerTokenFile, 'kafka.schemaRegistryAuth.bearerTokenFile', true).trim());
    return token === undefined ? {} : { authorization: `Bearer ${token}` };
  };
  if (auth.caFile === undefined && auth.rejectUnauthorized) return { headers, fetch: undefined };
  const ca =
    auth.caFile === undefined ? undefined : readOption(auth.caFile, 'kafka.schemaRegistryAuth.caFile', false);
  return { headers, fetch: httpsFetch({ ca, rejectUnauthorized: auth.rejectUnauthorized }) };
}

/**
 * A minimal fetch over node:https with our own CA (the global fetch cannot be given one without
 * the undici package). Enough for the registry client: method, headers, string body, signal,
 * status and text; http: URLs go to the global fetch.
 */
function httpsFetch(tls: { ca: string | undefined; rejectUnauthorized: boolean }): typeof fetch {
  return (async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    if (url.protocol !== 'https:') return globalThis.fetch(input, init);
    return new Promise<Response>((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method: init.method ?? 'GET',
          headers: init.headers as Record<string, string>,
          ...(tls.ca === undefined ? {} : { ca: tls.ca }),
          rejectUnauthorized: tls.rejectUnauthorized,
          ...(init.signal ? { signal: init.signal } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const status = res.statusCode ?? 500;
            const body = status === 204 || status === 304 ? null : Buffer.concat(chunks);
            resolve(new Response(body, { status }));
          });
        },
      );
      req.on('error', reject);
      req.end(typeof init.body === 'string' ? init.body : undefined);
    });
  }) as typeof fetch;
}
