/**
 * Where the file transport finds its inputs: `<dir>/ranker-outputs.<ext>` and
 * `<dir>/impressions.<ext>` (ext ndjson, jsonl or avro), for `label --in` and `replay --in`.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { RankdistillError } from '../errors.ts';
import type { Side } from '../join/types.ts';

const INPUT_BASENAMES: Record<Side, string> = { ranker: 'ranker-outputs', impression: 'impressions' };

/**
 * The input file of one side in `dir`.
 *
 * @throws RankdistillError USAGE when there is none or more than one.
 * @example
 * inputFile('sim-out', 'ranker'); // 'sim-out/ranker-outputs.ndjson'
 */
export function inputFile(dir: string, side: Side): string {
  const base = INPUT_BASENAMES[side];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (cause) {
    throw new RankdistillError('USAGE', `cannot read the input directory ${dir}: ${String(cause)}`, {
      cause,
    });
  }
  const hits = names.filter((n) => /^(.+)\.(ndjson|jsonl|avro)$/.exec(n)?.[1] === base).sort();
  if (hits.length !== 1) {
    throw new RankdistillError(
      'USAGE',
      `expected exactly one ${base}.ndjson|.jsonl|.avro in ${dir}, found ${hits.length === 0 ? 'none' : hits.join(', ')}`,
    );
  }
  return join(dir, hits[0] as string);
}
