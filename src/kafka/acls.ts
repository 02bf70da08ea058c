/**
 * The least privilege each rankdistill role needs on a cluster with an authorizer, derived from the
 * configuration (topic names, group ids, topic creation). One list feeds `rankdistill acls` (the
 * `kafka-acls` commands of docs/OPERATIONS.md), the secured-broker tests (which grant exactly these)
 * and the error that names a refused permission.
 *
 * @example
 * for (const line of kafkaAclsCommands(aclsForRole('labeler', config), 'User:labeler')) console.log(line);
 */
import type { Config } from '../config/schema.ts';

export const ACL_ROLES = ['labeler', 'trainer', 'replay', 'subscriber'] as const;
export type AclRole = (typeof ACL_ROLES)[number];

export type AclResource = 'topic' | 'group' | 'transactional-id' | 'cluster';
export type AclOperation = 'READ' | 'WRITE' | 'CREATE' | 'DESCRIBE' | 'IDEMPOTENT_WRITE';

/** One grant: operations on a resource named literally or by prefix. */
export interface AclGrant {
  resource: AclResource;
  /** Resource name (`kafka-cluster` for the cluster). */
  name: string;
  pattern: 'literal' | 'prefixed';
  operations: AclOperation[];
  /** Why the role needs it (shown in errors and docs). */
  why: string;
}

/** Options of roles whose resources are not in the config. */
export interface AclRoleOptions {
  /** replay: the `--to-topics` prefix of its output topics [`replay.`]. */
  replayTopicPrefix?: string;
  /** subscriber: its consumer group [`label-subscriber`]. */
  subscriberGroup?: string;
  /** subscriber: the label kinds it reads [all three]. */
  subscriberKinds?: ('pointwise' | 'pairwise' | 'listwise')[];
}

/** Group prefix of the labeler's changelog restore consumers (src/kafka/restore.ts). */
export const RESTORE_GROUP_PREFIX = 'rankdistill-restore-';
/** Group and transactional-id prefix of replays (src/replay/replay.ts). */
export const REPLAY_ID_PREFIX = 'rankdistill-replay-';

/**
 * The grants of one role under a config.
 *
 * @example
 * aclsForRole('trainer', parseConfig({}));
 */
export function aclsForRole(role: AclRole, cfg: Config, o: AclRoleOptions = {}): AclGrant[] {
  const k = cfg.kafka;
  const t = k.topics;
  const topic = (name: string, operations: AclOperation[], why: string): AclGrant => ({
    resource: 'topic',
    name,
    pattern: 'literal',
    operations: k.createTopics && operations.includes('WRITE') ? [...operations, 'CREATE'] : operations,
    why,
  });
  const labels = [t.pointwise, t.pairwise, t.listwise];
  switch (role) {
    case 'labeler':
      return [
        topic(t.rankerOutputs, ['READ'], 'consumes the teacher outputs'),
        topic(t.impressions, ['READ'], 'consumes the impressions'),
        ...[...labels, t.deadLetter].map((n) => topic(n, ['WRITE'], 'writes labels and dead letters')),
        topic(t.changelog, ['READ', 'WRITE'], 'writes the join state and restores it'),
        {
          resource: 'group',
          name: k.groupId,
          pattern: 'literal',
          operations: ['READ'],
          why: 'consumer group and transactional offset commits',
        },
        {
          resource: 'group',
          name: RESTORE_GROUP_PREFIX,
          pattern: 'prefixed',
          operations: ['READ'],
          why: 'changelog restore consumers',
        },
        {
          resource: 'transactional-id',
          name: `${k.groupId}-task-`,
          pattern: 'prefixed',
          operations: ['WRITE', 'DESCRIBE'],
          why: 'one transactional producer per task',
        },
      ];
    case 'trainer':
      return [
        ...labels.map((n) => topic(n, ['READ'], 'consumes the labels')),
        // The trainer never creates topics: WRITE alone, whatever kafka.createTopics says.
        { ...topic(t.snapshots, ['WRITE'], 'announces published snapshots'), operations: ['WRITE'] },
        {
          resource: 'group',
          name: cfg.train.groupId,
          pattern: 'literal',
          operations: ['READ'],
          why: "the trainer's consumer group",
        },
      ];
    case 'replay': {
      const prefix = o.replayTopicPrefix ?? 'replay.';
      return [
        topic(t.rankerOutputs, ['READ'], 'reads the history of the teacher outputs'),
        topic(t.impressions, ['READ'], 'reads the history of the impressions'),
        {
          ...topic(prefix, ['WRITE'], 'writes the rebuilt labels and dead letters (--to-topics prefix)'),
          pattern: 'prefixed',
        },
        {
          resource: 'group',
          name: REPLAY_ID_PREFIX,
          pattern: 'prefixed',
          operations: ['READ'],
          why: "the replay's own consumer group",
        },
        {
          resource: 'transactional-id',
          name: REPLAY_ID_PREFIX,
          pattern: 'prefixed',
          operations: ['WRITE', 'DESCRIBE'],
          why: 'one transactional producer per partition',
        },
      ];
    }
    case 'subscriber': {
      const kinds = o.subscriberKinds ?? ['pointwise', 'pairwise', 'listwise'];
      return [
        ...kinds.map((kind) => ({
          ...topic(t[kind], ['READ'], 'consumes the labels'),
          operations: ['READ' as const],
        })),
        {
          resource: 'group',
          name: o.subscriberGroup ?? 'label-subscriber',
          pattern: 'literal',
          operations: ['READ'],
          why: "the subscriber's consumer group",
        },
      ];
    }
  }
}

const FLAG: Record<AclResource, string> = {
  topic: '--topic',
  group: '--group',
  'transactional-id': '--transactional-id',
  cluster: '--cluster',
};

const OPERATION_NAME: Record<AclOperation, string> = {
  READ: 'Read',
  WRITE: 'Write',
  CREATE: 'Create',
  DESCRIBE: 'Describe',
  IDEMPOTENT_WRITE: 'IdempotentWrite',
};

/**
 * `kafka-acls.sh` command lines granting `grants` to `principal`, one per grant.
 *
 * @example
 * kafkaAclsCommands(aclsForRole('trainer', cfg), 'User:trainer');
 */
export function kafkaAclsCommands(grants: readonly AclGrant[], principal: string): string[] {
  return grants.map((g) =>
    [
      'kafka-acls.sh --bootstrap-server "$BROKERS" --command-config admin.properties --add',
      `--allow-principal ${principal}`,
      ...g.operations.map((op) => `--operation ${OPERATION_NAME[op]}`),
      g.resource === 'cluster' ? FLAG.cluster : `${FLAG[g.resource]} ${g.name}`,
      ...(g.pattern === 'prefixed' ? ['--resource-pattern-type prefixed'] : []),
    ].join(' '),
  );
}
