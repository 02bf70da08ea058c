/**
 * Replay range bounds: `--from` / `--to` as epoch milliseconds or ISO-8601 timestamps.
 */
import { RankdistillError } from '../errors.ts';

/**
 * Parses a time bound: digits are epoch milliseconds, anything else must be an ISO-8601 date/time
 * (`Date.parse`). A zone-less ISO time is read as local time by `Date.parse`, so give `Z` or an
 * offset when it matters.
 *
 * @throws RankdistillError USAGE naming the option and the value found.
 * @example
 * parseTime('1700000000000', '--from'); // 1700000000000
 * parseTime('2023-11-14T22:13:20Z', '--to'); // 1700000000000
 */
export function parseTime(value: string, option: string): number {
  const v = value.trim();
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(ms) || ms < 0) {
    throw new RankdistillError(
      'USAGE',
      `${option} must be epoch milliseconds or an ISO-8601 time such as 2024-05-01T12:00:00Z, found ${JSON.stringify(value)}`,
      { details: { option, value } },
    );
  }
  return ms;
}
