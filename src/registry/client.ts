/**
 * A small typed client of the Confluent Schema Registry REST API (the subset rankdistill needs),
 * over Node's global `fetch`.
 *
 * Works with Confluent's server and with compatible ones (Apicurio's `/apis/ccompat/v7`,
 * Karapace): `url` is the base of the API, e.g. `http://127.0.0.1:8081` or
 * `http://127.0.0.1:8080/apis/ccompat/v7`.
 *
 * Subjects follow Confluent's default TopicNameStrategy: the value schema of topic `t` lives under
 * subject `t-value` ({@link subjectFor}).
 *
 * Errors: a registry that cannot be reached, times out or answers 5xx is a retriable
 * `SCHEMA_REGISTRY_FAILED` (retried here a few times first); an id the registry does not know is
 * `SCHEMA_ID_UNKNOWN`; a schema refused as incompatible is `SCHEMA_INCOMPATIBLE`; a schema it
 * cannot parse is `SCHEMA_INVALID`. Every message names the request and what came back.
 *
 * API reference: https://docs.confluent.io/platform/current/schema-registry/develop/api.html
 */
import avro from 'avsc';
import { boundedTypeHook } from '../contracts/schemas.ts';
import { type ErrorCode, RankdistillError } from '../errors.ts';

/** Compatibility levels of the Confluent API. */
export const COMPATIBILITY_LEVELS = [
  'NONE',
  'BACKWARD',
  'BACKWARD_TRANSITIVE',
  'FORWARD',
  'FORWARD_TRANSITIVE',
  'FULL',
  'FULL_TRANSITIVE',
] as const;
export type CompatibilityLevel = (typeof COMPATIBILITY_LEVELS)[number];

export interface SchemaRegistryClientOptions {
  /** Base URL of the Confluent REST API (no trailing `/subjects`). */
  url: string;
  /** Per-request timeout [10 s]. */
  timeoutMs?: number;
  /** Extra attempts after a network error, timeout or 5xx answer [2]. */
  retries?: number;
  /** Delay before the first retry, doubled on each further one [100 ms]. */
  retryBackoffMs?: number;
  /** Extra request headers (e.g. authorization), or a function giving them for each request. */
  headers?: Record<string, string> | (() => Record<string, string>);
  /** The fetch implementation [globalThis.fetch]; injectable for tests. */
  fetch?: typeof fetch;
}

/** Answer of a compatibility check. */
export interface CompatibilityResult {
  compatible: boolean;
  /** The registry's explanation when incompatible (empty when it gives none). */
  messages: string[];
}

/** What the registry answered, kept in error details. */
interface Answer {
  status: number;
  body: unknown;
  text: string;
}

const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';

/**
 * The subject of a topic's key or value schema under TopicNameStrategy.
 *
 * @example
 * subjectFor('ranker-outputs') // 'ranker-outputs-value'
 */
export function subjectFor(topic: string, part: 'key' | 'value' = 'value'): string {
  return `${topic}-${part}`;
}

/**
 * Builds the avsc type of a writer schema fetched from a registry, with the same options as our
 * own contracts (hardened array/map readers, unions unwrapped where unambiguous), so it can be
 * resolved against our reader types.
 *
 * @throws RankdistillError SCHEMA_INVALID when the text is not a valid Avro schema.
 * @example
 * const writer = parseAvroSchema('{"type":"record","name":"R","fields":[]}');
 */
export function parseAvroSchema(schema: string | avro.Schema, what = 'schema'): avro.Type {
  let parsed: unknown = schema;
  if (typeof schema === 'string') {
    try {
      parsed = JSON.parse(schema);
    } catch {
      // A bare primitive name such as "string" is valid Avro but not JSON.
      parsed = schema;
    }
  }
  try {
    return avro.Type.forSchema(parsed as avro.Schema, { wrapUnions: 'auto', typeHook: boundedTypeHook });
  } catch (cause) {
    throw new RankdistillError('SCHEMA_INVALID', `${what} is not a valid Avro schema: ${String(cause)}`, {
      cause,
      details: { schema: typeof schema === 'string' ? schema.slice(0, 500) : schema },
    });
  }
}

function schemaText(schema: string | avro.Schema | avro.Type): string {
  if (typeof schema === 'string') return schema;
  if (schema instanceof avro.Type) return JSON.stringify(schema.schema());
  return JSON.stringify(schema);
}

function errorCodeOf(body: unknown): number | undefined {
  const c = (body as { error_code?: unknown } | null)?.error_code;
  return typeof c === 'number' ? c : undefined;
}

function messageOf(a: Answer): string {
  const m = (a.body as { message?: unknown } | null)?.message;
  const shown = typeof m === 'string' ? m : a.text.slice(0, 300);
  const code = errorCodeOf(a.body);
  return `HTTP ${a.status}${code === undefined ? '' : ` (error_code ${code})`}${shown ? `: ${shown}` : ''}`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Client of one schema registry. Writer schemas fetched by id are cached for the life of the
 * client (an id never changes meaning in a registry).
 *
 * @example
 * const registry = new SchemaRegistryClient({ url: 'http://127.0.0.1:8081' });
 * const id = await registry.registerSchema(subjectFor('ranker-outputs'), schemaJson('RankerOutput'));
 * const writer = await registry.schemaById(id);
 */
export class SchemaRegistryClient {
  readonly url: string;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #backoffMs: number;
  readonly #headers: () => Record<string, string>;
  readonly #fetch: typeof fetch;
  /** Settled and in-flight lookups by id; a failed lookup is dropped so it can be retried. */
  readonly #byId = new Map<number, Promise<avro.Type>>();
  readonly #resolved = new Map<number, avro.Type>();

  constructor(options: SchemaRegistryClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch (cause) {
      throw new RankdistillError(
        'CONFIG_INVALID',
        `schema registry url must be an absolute http(s) URL, found ${JSON.stringify(options.url)}`,
        { cause },
      );
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new RankdistillError(
        'CONFIG_INVALID',
        `schema registry url must use http or https, found ${parsed.protocol}`,
      );
    }
    this.url = options.url.replace(/\/+$/, '');
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#retries = options.retries ?? 2;
    this.#backoffMs = options.retryBackoffMs ?? 100;
    const h = options.headers;
    this.#headers = typeof h === 'function' ? h : () => ({ ...(h ?? {}) });
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /**
   * Registers a schema under a subject and returns its global id. Registering a schema the
   * subject already has returns the existing id (the call is idempotent).
   *
   * @throws RankdistillError SCHEMA_INCOMPATIBLE (409), SCHEMA_INVALID (422), SCHEMA_REGISTRY_FAILED.
   * @example
   * const id = await registry.registerSchema('ranker-outputs-value', schemaJson('RankerOutput'));
   */
  async registerSchema(subject: string, schema: string | avro.Schema | avro.Type): Promise<number> {
    const path = `/subjects/${encodeURIComponent(subject)}/versions`;
    const a = await this.#request('POST', path, { schema: schemaText(schema) });
    if (a.status === 200) {
      const id = (a.body as { id?: unknown } | null)?.id;
      if (typeof id === 'number' && Number.isInteger(id) && id >= 0) return id;
      throw this.#fail('SCHEMA_REGISTRY_FAILED', 'POST', path, a, 'expected {"id": <integer>}');
    }
    if (a.status === 409) {
      throw this.#fail(
        'SCHEMA_INCOMPATIBLE',
        'POST',
        path,
        a,
        `the schema is incompatible with the earlier versions of subject ${subject}`,
      );
    }
    if (a.status === 422 || a.status === 400) {
      throw this.#fail('SCHEMA_INVALID', 'POST', path, a, `the registry refused the schema for ${subject}`);
    }
    throw this.#fail('SCHEMA_REGISTRY_FAILED', 'POST', path, a);
  }

  /**
   * Tests a schema against the latest version of a subject under the subject's compatibility
   * level. A subject with no version yet accepts anything.
   *
   * @throws RankdistillError SCHEMA_INVALID (422), SCHEMA_REGISTRY_FAILED.
   * @example
   * const r = await registry.testCompatibility('ranker-outputs-value', schema);
   * if (!r.compatible) console.error(r.messages.join('\n'));
   */
  async testCompatibility(
    subject: string,
    schema: string | avro.Schema | avro.Type,
  ): Promise<CompatibilityResult> {
    const path = `/compatibility/subjects/${encodeURIComponent(subject)}/versions/latest`;
    const a = await this.#request('POST', `${path}?verbose=true`, { schema: schemaText(schema) });
    if (a.status === 200) {
      const b = a.body as { is_compatible?: unknown; messages?: unknown; reason?: unknown } | null;
      if (typeof b?.is_compatible !== 'boolean') {
        throw this.#fail('SCHEMA_REGISTRY_FAILED', 'POST', path, a, 'expected {"is_compatible": <boolean>}');
      }
      const messages: string[] = [];
      if (Array.isArray(b.messages)) for (const m of b.messages) messages.push(String(m));
      if (typeof b.reason === 'string' && b.reason) messages.push(b.reason); // Apicurio's field
      return { compatible: b.is_compatible, messages };
    }
    // 40401 subject not found / 40402 version not found: nothing registered to break.
    const ec = errorCodeOf(a.body);
    if (a.status === 404 && (ec === 40401 || ec === 40402)) return { compatible: true, messages: [] };
    if (a.status === 422 || a.status === 400) {
      throw this.#fail('SCHEMA_INVALID', 'POST', path, a, `the registry refused the schema for ${subject}`);
    }
    throw this.#fail('SCHEMA_REGISTRY_FAILED', 'POST', path, a);
  }

  /**
   * Like {@link testCompatibility}, but refuses an incompatible schema with an error that quotes
   * the registry's reasons.
   *
   * @throws RankdistillError SCHEMA_INCOMPATIBLE, SCHEMA_INVALID, SCHEMA_REGISTRY_FAILED.
   * @example
   * await registry.checkCompatibility('ranker-outputs-value', schemaJson('RankerOutput'));
   */
  async checkCompatibility(subject: string, schema: string | avro.Schema | avro.Type): Promise<void> {
    const r = await this.testCompatibility(subject, schema);
    if (!r.compatible) {
      throw new RankdistillError(
        'SCHEMA_INCOMPATIBLE',
        `schema registry ${this.url}: the schema is incompatible with the latest version of subject ${subject}` +
          (r.messages.length > 0 ? `: ${r.messages.join('; ')}` : ' (the registry gave no reason)'),
        { details: { subject, messages: r.messages } },
      );
    }
  }

  /**
   * Sets the compatibility level of a subject (PUT /config/{subject}).
   *
   * @throws RankdistillError SCHEMA_REGISTRY_FAILED.
   * @example
   * await registry.setCompatibility('ranker-outputs-value', 'BACKWARD');
   */
  async setCompatibility(subject: string, level: CompatibilityLevel): Promise<void> {
    if (!(COMPATIBILITY_LEVELS as readonly string[]).includes(level)) {
      throw new RankdistillError(
        'CONFIG_INVALID',
        `compatibility level must be one of ${COMPATIBILITY_LEVELS.join(', ')}, found ${JSON.stringify(level)}`,
      );
    }
    const path = `/config/${encodeURIComponent(subject)}`;
    const a = await this.#request('PUT', path, { compatibility: level });
    if (a.status === 200) return;
    throw this.#fail('SCHEMA_REGISTRY_FAILED', 'PUT', path, a, `cannot set compatibility ${level}`);
  }

  /**
   * The writer schema registered under a global id, as an avsc type; cached, and concurrent
   * lookups of one id share a single request.
   *
   * @throws RankdistillError SCHEMA_ID_UNKNOWN (404), SCHEMA_INVALID (not Avro), SCHEMA_REGISTRY_FAILED.
   * @example
   * const writer = await registry.schemaById(confluentSchemaId(buf).value);
   */
  schemaById(id: number): Promise<avro.Type> {
    let p = this.#byId.get(id);
    if (p === undefined) {
      p = this.#fetchSchema(id).then(
        (t) => {
          this.#resolved.set(id, t);
          return t;
        },
        (e: unknown) => {
          this.#byId.delete(id);
          throw e;
        },
      );
      this.#byId.set(id, p);
    }
    return p;
  }

  /**
   * The writer schema of an id if it was already fetched, else undefined (never does I/O).
   *
   * @example
   * const t = registry.cachedSchemaById(7) ?? (await registry.schemaById(7));
   */
  cachedSchemaById(id: number): avro.Type | undefined {
    return this.#resolved.get(id);
  }

  async #fetchSchema(id: number): Promise<avro.Type> {
    if (!Number.isInteger(id) || id < 0) {
      throw new RankdistillError(
        'SCHEMA_ID_UNKNOWN',
        `schema id must be a non-negative integer, found ${id}`,
        {
          details: { schemaId: id },
        },
      );
    }
    const path = `/schemas/ids/${id}`;
    const a = await this.#request('GET', path);
    if (a.status === 404) {
      throw this.#fail('SCHEMA_ID_UNKNOWN', 'GET', path, a, `schema id ${id} is not registered`, {
        schemaId: id,
      });
    }
    if (a.status !== 200) throw this.#fail('SCHEMA_REGISTRY_FAILED', 'GET', path, a);
    const b = a.body as { schema?: unknown; schemaType?: unknown } | null;
    if (typeof b?.schema !== 'string') {
      throw this.#fail('SCHEMA_REGISTRY_FAILED', 'GET', path, a, 'expected {"schema": <string>}');
    }
    if (b.schemaType !== undefined && b.schemaType !== 'AVRO') {
      throw new RankdistillError(
        'SCHEMA_INVALID',
        `schema id ${id} is a ${String(b.schemaType)} schema, expected AVRO`,
        { details: { schemaId: id, schemaType: b.schemaType } },
      );
    }
    return parseAvroSchema(b.schema, `schema id ${id} from ${this.url}`);
  }

  /** One request with retries on network errors, timeouts and 5xx; 4xx answers are returned. */
  async #request(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<Answer> {
    const url = `${this.url}${path}`;
    let last: { error?: unknown; answer?: Answer } = {};
    for (let attempt = 0; attempt <= this.#retries; attempt++) {
      if (attempt > 0) await sleep(this.#backoffMs * 2 ** (attempt - 1));
      try {
        const init: RequestInit = {
          method,
          headers: {
            accept: `${CONTENT_TYPE}, application/json`,
            ...(body === undefined ? {} : { 'content-type': CONTENT_TYPE }),
            ...this.#headers(),
          },
          signal: AbortSignal.timeout(this.#timeoutMs),
        };
        if (body !== undefined) init.body = JSON.stringify(body);
        const res = await this.#fetch(url, init);
        const text = await res.text();
        let parsed: unknown = null;
        if (text.length > 0) {
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = null;
          }
        }
        const answer = { status: res.status, body: parsed, text };
        if (res.status < 500) return answer;
        last = { answer };
      } catch (error) {
        last = { error };
      }
    }
    if (last.answer !== undefined) return last.answer;
    const cause = last.error;
    const why =
      cause instanceof Error && cause.name === 'TimeoutError'
        ? `no answer within ${this.#timeoutMs} ms`
        : String((cause as { cause?: unknown })?.cause ?? cause);
    throw new RankdistillError(
      'SCHEMA_REGISTRY_FAILED',
      `schema registry ${method} ${url} failed after ${this.#retries + 1} attempt(s): ${why}`,
      { cause, details: { method, url } },
    );
  }

  #fail(
    code: ErrorCode,
    method: string,
    path: string,
    a: Answer,
    expected?: string,
    extra: Record<string, unknown> = {},
  ): RankdistillError {
    const url = `${this.url}${path}`;
    return new RankdistillError(
      code,
      `schema registry ${method} ${url}: ${expected ? `${expected}; ` : ''}got ${messageOf(a)}`,
      {
        details: {
          method,
          url,
          status: a.status,
          errorCode: errorCodeOf(a.body),
          body: a.text.slice(0, 2000),
          ...extra,
        },
      },
    );
  }
}
