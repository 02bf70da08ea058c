/**
 * The `rankdistill` command line. Each subcommand lives in `src/cli/commands/<name>.ts` and
 * exports `register(program)`.
 */
import { Command, CommanderError } from 'commander';
import { errorMessage, isRankdistillError } from '../errors.ts';
import { register as registerAcls } from './commands/acls.ts';
import { register as registerConfig } from './commands/config.ts';
import { register as registerDemo } from './commands/demo.ts';
import { register as registerLabel } from './commands/label.ts';
import { register as registerRecall } from './commands/recall.ts';
import { register as registerReplay } from './commands/replay.ts';
import { register as registerSimulate } from './commands/simulate.ts';
import { register as registerSnapshots } from './commands/snapshots.ts';
import { register as registerTrain } from './commands/train.ts';
import { register as registerUp } from './commands/up.ts';

export function buildProgram(): Command {
  const program = new Command('rankdistill')
    .description(
      'Join teacher ranker outputs with impressions, emit distillation labels, train a student recall model.',
    )
    .option('-c, --config <file>', 'config file (YAML or JSON); env RANKDISTILL_CONFIG')
    .exitOverride()
    .showHelpAfterError();
  registerDemo(program);
  registerConfig(program);
  registerTrain(program);
  registerLabel(program);
  registerSnapshots(program);
  registerRecall(program);
  registerSimulate(program);
  registerUp(program);
  registerReplay(program);
  registerAcls(program);
  return program;
}

/**
 * Runs the CLI; returns the process exit code. One scheme for every command (README "Exit codes"):
 * 0 done (also --help / --version); 2 an error rankdistill reports in one line — a usage error
 * (commander's too, which would exit 1 by itself), bad config, bad input, a corrupt or missing
 * snapshot, Kafka unreachable —; 1 an unexpected error (a bug: the stack is printed); 130 replay
 * stopped by Ctrl-C (the same command resumes).
 * `onAction` runs right before the command's action (bin/rankdistill.mjs stops exiting on a signal
 * there and leaves signals to the command).
 */
export async function main(
  argv: string[],
  onAction?: (program: Command, action: Command) => void,
): Promise<number> {
  const program = buildProgram();
  if (onAction !== undefined) program.hook('preAction', onAction);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    // commander has printed its message; its usage errors (exitCode 1) are usage errors: 2
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (isRankdistillError(e)) {
      console.error(`rankdistill: ${e.name} [${e.code}]: ${e.message}`);
      return 2;
    }
    console.error(`rankdistill: unexpected error: ${errorMessage(e)}`);
    if (e instanceof Error && e.stack) console.error(e.stack);
    return 1;
  }
}
