/** Option parsers shared by the commands. */
import { InvalidArgumentError } from 'commander';

/**
 * A positive integer option value.
 *
 * @throws InvalidArgumentError (commander prints it as a usage error) for anything else.
 * @example
 * program.option('--threads <n>', 'threads', positiveInt);
 */
export function positiveInt(v: string): number {
  if (!/^\d+$/.test(v.trim()) || Number(v) < 1)
    throw new InvalidArgumentError(`expected a positive integer, found ${v}`);
  return Number(v);
}
