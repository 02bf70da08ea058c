/**
 * The `rankdistill` command line. Each subcommand lives in `src/cli/commands/<name>.ts` and
 * exports `register(program)`.
 */
import { Command, CommanderError } from 'commander';
import { errorMessage, isRankdistillError } from '../errors.ts';

type CommandModule = { register(program: Command): void };

/**
 * The subcommands in help order, each loaded only when needed: a command's module pulls in its
 * whole stack (`train` and `demo` TensorFlow.js, ~0.8 s of CPU), so `rankdistill replay …` loads
 * only the replay command's modules, and the worker threads and child processes it starts are not
 * kept waiting behind the others. Help without a command, or an unknown command, loads them all.
 */
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  demo: () => import('./commands/demo.ts'),
  config: () => import('./commands/config.ts'),
  train: () => import('./commands/train.ts'),
  label: () => import('./commands/label.ts'),
  snapshots: () => import('./commands/snapshots.ts'),
  recall: () => import('./commands/recall.ts'),
  simulate: () => import('./commands/simulate.ts'),
  up: () => import('./commands/up.ts'),
  replay: () => import('./commands/replay.ts'),
  acls: () => import('./commands/acls.ts'),
};

/**
 * The subcommand `argv` names (its first argument that is not the top-level `-c/--config <file>`),
 * or null when there is none or it is not a known command (help, a typo).
 */
export function commandOf(argv: readonly string[]): string | null {
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '-c' || a === '--config') {
      i++;
      continue;
    }
    if (a.startsWith('--config=') || (a.startsWith('-c') && a.length > 2 && !a.startsWith('--'))) continue;
    return Object.hasOwn(COMMANDS, a) ? a : null;
  }
  return null;
}

/**
 * The program with the subcommands `only` names registered (all of them when null or omitted).
 */
export async function buildProgram(only: string | null = null): Promise<Command> {
  const program = new Command('rankdistill')
    .description(
      'Join teacher ranker outputs with impressions, emit distillation labels, train a student recall model.',
    )
    .option('-c, --config <file>', 'config file (YAML or JSON); env RANKDISTILL_CONFIG')
    .exitOverride()
    .showHelpAfterError();
  const names = only === null ? Object.keys(COMMANDS) : [only];
  const modules = await Promise.all(names.map((n) => (COMMANDS[n] as () => Promise<CommandModule>)()));
  for (const m of modules) m.register(program);
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
  const program = await buildProgram(commandOf(argv));
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
