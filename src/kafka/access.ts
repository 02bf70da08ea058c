/**
 * Turns the cluster's refusals into one clear error: a missing ACL names the resource (topic,
 * group, transactional id, cluster) and the operation the role needs on it, with the
 * `kafka-acls` command that grants it; refused credentials and a plaintext client on a TLS
 * listener say so. kafkajs reports only the error code (TOPIC_AUTHORIZATION_FAILED does not say
 * which topic), so the role's grants ({@link aclsForRole}) give the candidates and a metadata
 * request per topic finds the one the principal cannot even describe.
 *
 * @example
 * try { await run() } catch (e) { throw await explainKafkaError(e, { kafka: config.kafka, grants }) }
 */
import { Kafka, logLevel } from 'kafkajs';
import type { KafkaConfig } from '../config/schema.ts';
import { errorMessage, RankdistillError } from '../errors.ts';
import { type AclGrant, type AclResource, kafkaAclsCommands } from './acls.ts';
import { kafkaSecurity } from './security.ts';

const AUTHORIZATION_TYPES: Record<string, AclResource> = {
  TOPIC_AUTHORIZATION_FAILED: 'topic',
  GROUP_AUTHORIZATION_FAILED: 'group',
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 'transactional-id',
  CLUSTER_AUTHORIZATION_FAILED: 'cluster',
};

/** What went wrong, found anywhere in an error's cause chain. */
export type KafkaAccessFailure =
  | { kind: 'authorization'; resource: AclResource; type: string }
  | { kind: 'authentication'; message: string }
  | { kind: 'connection'; message: string };

/**
 * The first access failure in `e`'s chain (`cause`, kafkajs `originalError`, and the `errors` of
 * an aggregate such as CreateTopics'), if any.
 */
export function kafkaAccessFailure(e: unknown): KafkaAccessFailure | undefined {
  let connection: KafkaAccessFailure | undefined;
  const seen = new Set<unknown>();
  const queue: unknown[] = [e];
  for (let cur = queue.shift(); cur !== undefined; cur = queue.shift()) {
    if (cur === null || typeof cur !== 'object' || seen.has(cur)) continue;
    seen.add(cur);
    const x = cur as {
      type?: unknown;
      name?: unknown;
      message?: unknown;
      cause?: unknown;
      originalError?: unknown;
    };
    const type = typeof x.type === 'string' ? x.type : '';
    const resource = AUTHORIZATION_TYPES[type];
    if (resource !== undefined) return { kind: 'authorization', resource, type };
    if (x.name === 'KafkaJSSASLAuthenticationError' || type === 'SASL_AUTHENTICATION_FAILED') {
      return { kind: 'authentication', message: String(x.message) };
    }
    if (
      connection === undefined &&
      (x.name === 'KafkaJSConnectionError' || x.name === 'KafkaJSConnectionClosedError')
    ) {
      connection = { kind: 'connection', message: String(x.message) };
    }
    const errors = (x as { errors?: unknown }).errors;
    for (const next of [x.cause, x.originalError, ...(Array.isArray(errors) ? errors : [])]) {
      if (next !== undefined && next !== null) queue.push(next);
    }
  }
  return connection;
}

/** What {@link explainKafkaError} knows about the run. */
export interface AccessContext {
  kafka: KafkaConfig;
  /** The role's grants (aclsForRole); without them only the resource type is named. */
  grants?: readonly AclGrant[];
  /** Role name for the message (labeler, trainer, ...). */
  role?: string;
}

function principalOf(k: KafkaConfig): string {
  return k.sasl.username === undefined ? 'this client' : `User:${k.sasl.username}`;
}

function describeGrant(g: AclGrant): string {
  const what =
    g.resource === 'cluster'
      ? 'the cluster'
      : `${g.resource} ${g.pattern === 'prefixed' ? `prefix '${g.name}'` : `'${g.name}'`}`;
  return `${g.operations.join(', ')} on ${what} (${g.why})`;
}

/** Topics of `grants` the principal cannot describe (metadata refused), probed one by one. */
async function undescribableTopics(k: KafkaConfig, grants: readonly AclGrant[]): Promise<AclGrant[]> {
  const kafka = new Kafka({
    clientId: `${k.clientId}-acl-check`,
    brokers: k.brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5_000,
    requestTimeout: 10_000,
    retry: { retries: 1 },
    ...kafkaSecurity(k),
  });
  const admin = kafka.admin();
  const refused: AclGrant[] = [];
  try {
    await admin.connect();
    for (const g of grants) {
      if (g.resource !== 'topic' || g.pattern !== 'literal') continue;
      try {
        await admin.fetchTopicMetadata({ topics: [g.name] });
      } catch (e) {
        if ((e as { type?: string }).type === 'TOPIC_AUTHORIZATION_FAILED') refused.push(g);
      }
    }
  } catch {
    // The probe is best effort: the caller still names the candidates.
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  return refused;
}

/**
 * The error to report for `e`: a KAFKA_AUTHORIZATION_FAILED naming the missing permission, a
 * KAFKA_AUTHENTICATION_FAILED, a KAFKA_UNAVAILABLE hinting at TLS, or `e` itself when it is none of
 * these.
 *
 * @example
 * throw await explainKafkaError(e, { kafka: cfg.kafka, grants: aclsForRole('labeler', cfg), role: 'labeler' });
 */
export async function explainKafkaError(e: unknown, ctx: AccessContext): Promise<unknown> {
  if (
    e instanceof RankdistillError &&
    (e.code === 'KAFKA_AUTHORIZATION_FAILED' || e.code === 'KAFKA_AUTHENTICATION_FAILED')
  )
    return e;
  const f = kafkaAccessFailure(e);
  if (f === undefined) return e;
  const k = ctx.kafka;
  const who = principalOf(k);
  if (f.kind === 'authentication') {
    return new RankdistillError(
      'KAFKA_AUTHENTICATION_FAILED',
      `Kafka refused the credentials of ${who} (kafka.sasl.mechanism ${k.sasl.mechanism}): ${f.message}. Check kafka.sasl.username and the password; not retried`,
      { cause: e, details: { mechanism: k.sasl.mechanism, username: k.sasl.username } },
    );
  }
  if (f.kind === 'connection') {
    if (k.ssl.enabled) return e;
    return new RankdistillError(
      'KAFKA_UNAVAILABLE',
      `the broker at ${k.brokers.join(',')} closed the connection (${f.message}) and kafka.ssl.enabled is false: if its listener is SSL or SASL_SSL, turn kafka.ssl.enabled on`,
      { cause: e, details: { brokers: k.brokers } },
    );
  }
  const candidates = (ctx.grants ?? []).filter((g) => g.resource === f.resource);
  let named = candidates;
  if (f.resource === 'topic' && candidates.length > 1) {
    const refused = await undescribableTopics(k, candidates);
    if (refused.length > 0) named = refused;
  }
  const role = ctx.role === undefined ? '' : ` (the ${ctx.role})`;
  const head = `Kafka refused ${who}${role} (${f.type})`;
  const message =
    named.length === 0
      ? `${head}: an ACL on a ${f.resource} is missing; see docs/OPERATIONS.md, "Security and ACLs"`
      : named.length === 1
        ? `${head}: missing ACL ${describeGrant(named[0] as AclGrant)}. Grant it with: ${kafkaAclsCommands(named, who)[0]}`
        : `${head}: missing ACL, one of: ${named.map(describeGrant).join('; ')}. See docs/OPERATIONS.md, "Security and ACLs"`;
  return new RankdistillError('KAFKA_AUTHORIZATION_FAILED', message, {
    cause: e,
    details: {
      principal: who,
      errorType: f.type,
      resources: named.map((g) => ({
        resource: g.resource,
        name: g.name,
        pattern: g.pattern,
        operations: g.operations,
      })),
      cause: errorMessage(e),
    },
  });
}

/**
 * Runs `fn`, rethrowing its failure through {@link explainKafkaError}.
 *
 * @example
 * await withKafkaAccess({ kafka: cfg.kafka, grants: aclsForRole('trainer', cfg), role: 'trainer' }, () => run());
 */
export async function withKafkaAccess<T>(ctx: AccessContext, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw await explainKafkaError(e, ctx);
  }
}
