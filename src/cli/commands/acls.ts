import { type Command, Option } from 'commander';
import { loadConfig } from '../../config/index.ts';
import { ACL_ROLES, type AclRole, aclsForRole, kafkaAclsCommands } from '../../kafka/acls.ts';

/**
 * `rankdistill acls --role <role> --principal User:<name>`: the `kafka-acls.sh` commands granting
 * a role exactly what it needs under the effective configuration (docs/OPERATIONS.md).
 */
export function register(program: Command): void {
  program
    .command('acls')
    .description(
      'print the kafka-acls.sh commands granting a role the least privilege it needs (this config)',
    )
    .addOption(
      new Option('--role <role>', 'labeler, trainer, replay or subscriber')
        .choices(ACL_ROLES)
        .makeOptionMandatory(),
    )
    .option('--principal <principal>', 'Kafka principal to grant', 'User:rankdistill')
    .option('--replay-topic-prefix <prefix>', 'replay: the --to-topics prefix of its outputs', 'replay.')
    .option('--subscriber-group <group>', 'subscriber: its consumer group', 'label-subscriber')
    .option('--json', 'print the grants as JSON instead')
    .action(
      (
        opts: {
          role: AclRole;
          principal: string;
          replayTopicPrefix: string;
          subscriberGroup: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const config = loadConfig({ file: cmd.optsWithGlobals<{ config?: string }>().config });
        const grants = aclsForRole(opts.role, config, {
          replayTopicPrefix: opts.replayTopicPrefix,
          subscriberGroup: opts.subscriberGroup,
        });
        if (opts.json) console.log(JSON.stringify(grants, null, 2));
        else for (const line of kafkaAclsCommands(grants, opts.principal)) console.log(line);
      },
    );
}
