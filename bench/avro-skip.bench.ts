/**
 * The Avro record skipper (src/contracts/avro-skip.ts), which splits each block of an Avro input
 * file into records for the file replay: time to walk every record of every block of a simulated
 * run's two files, this tree's skipper against the skipper of a baseline commit
 * (BENCH_SKIP_BASE [3a0b056], the closure-per-value skipper), loaded from git in the same process.
 * Rounds alternate which one goes first, so a load change hits both; the median of each is kept.
 * Before timing, both must give the same end for every record.
 *
 * Workload: the simulator (seed 3), BENCH_SKIP_REQUESTS requests [10,000] × BENCH_SKIP_CANDIDATES
 * candidates [200], Avro files; BENCH_SKIP_DIR reuses (or fills) a directory of them.
 * BENCH_SKIP_ROUNDS [9] rounds.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { compileSkipper, type Skipper } from '../src/contracts/avro-skip.ts';
import { type ContractName, schemaJson } from '../src/contracts/schemas.ts';
import { avroItems, fileChunks } from '../src/io/files.ts';
import { FileSimSink, simFiles } from '../src/io/sim-sink.ts';
import { simulate } from '../src/sim/simulate.ts';
import { type Figure, quantile, writeResult } from './lib.ts';

const REQUESTS = Number(process.env.BENCH_SKIP_REQUESTS ?? 10_000);
const CANDIDATES = Number(process.env.BENCH_SKIP_CANDIDATES ?? 200);
const ROUNDS = Number(process.env.BENCH_SKIP_ROUNDS ?? 9);
const BASE = process.env.BENCH_SKIP_BASE ?? '3a0b056';

interface Block {
  data: Buffer;
  count: number;
}

/** The baseline's compileSkipper: its avro-skip.ts (no imports) written to a temp file and imported. */
async function baselineCompiler(): Promise<(schema: unknown) => Skipper> {
  let source: string;
  try {
    source = execFileSync('git', ['show', `${BASE}:src/contracts/avro-skip.ts`], { encoding: 'utf8' });
  } catch {
    console.error(`avro-skip bench: cannot read src/contracts/avro-skip.ts at ${BASE} with git show`);
    process.exit(1);
  }
  const file = join(mkdtempSync(join(tmpdir(), 'rd-bench-skip-')), 'avro-skip-base.ts');
  writeFileSync(file, source);
  return ((await import(pathToFileURL(file).href)) as { compileSkipper: (s: unknown) => Skipper })
    .compileSkipper;
}

async function blocksOf(path: string, name: ContractName): Promise<Block[]> {
  const out: Block[] = [];
  for await (const x of avroItems(fileChunks(path), name, path)) {
    if (!('block' in x)) throw new Error(`${path}: a record outside a block (${x.offset})`);
    x.st.index += x.count;
    out.push({ data: x.block, count: x.count });
  }
  return out;
}

/**
 * Walks the records of every block as the file reader does (src/io/record-batches.ts): up to the
 * first one refused (the simulator writes some malformed records; the reader decodes those and
 * the rest of their block). Returns every end, −1 for a refused record.
 */
function walkAll(skip: Skipper, blocks: Block[], out: Int32Array): Int32Array {
  let k = 0;
  for (const b of blocks) {
    let p = 0;
    for (let i = 0; i < b.count && p >= 0; i++) {
      p = skip(b.data, p, b.data.length);
      out[k++] = p;
    }
  }
  return out.subarray(0, k);
}

function timeMs(fn: () => unknown): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const dir = process.env.BENCH_SKIP_DIR ?? mkdtempSync(join(tmpdir(), 'rd-bench-skip-sim-'));
const files = simFiles(dir, 'avro');
if (!existsSync(files.rankerOutputs) || !existsSync(files.impressions)) {
  await simulate({ seed: 3, requests: REQUESTS, candidates: CANDIDATES }, new FileSimSink(dir, 'avro'));
}
const compileBase = await baselineCompiler();
const figures: Record<string, Figure> = {};
for (const [label, name, path] of [
  ['rankerOutputs', 'RankerOutput', files.rankerOutputs],
  ['impressions', 'Impression', files.impressions],
] as const) {
  const blocks = await blocksOf(path, name);
  const records = blocks.reduce((s, b) => s + b.count, 0);
  const bytes = blocks.reduce((s, b) => s + b.data.length, 0);
  const fresh = compileSkipper(schemaJson(name));
  const base = compileBase(schemaJson(name));
  const a = walkAll(fresh, blocks, new Int32Array(records));
  const b = walkAll(base, blocks, new Int32Array(records));
  if (a.length !== b.length || a.some((e, i) => e !== b[i])) {
    console.error(`avro-skip bench: ${name}: the two skippers disagree on a record's end`);
    process.exit(1);
  }
  const refused = a.reduce((n, e) => n + (e < 0 ? 1 : 0), 0);
  const out = new Int32Array(records);
  const tNew: number[] = [];
  const tBase: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) {
      tNew.push(timeMs(() => walkAll(fresh, blocks, out)));
      tBase.push(timeMs(() => walkAll(base, blocks, out)));
    } else {
      tBase.push(timeMs(() => walkAll(base, blocks, out)));
      tNew.push(timeMs(() => walkAll(fresh, blocks, out)));
    }
  }
  const mNew = quantile(
    tNew.sort((x, y) => x - y),
    0.5,
  );
  const mBase = quantile(
    tBase.sort((x, y) => x - y),
    0.5,
  );
  const note =
    `${records} records (${refused} refused, malformed), ${(bytes / 1e6).toFixed(1)} MB of block data; ` +
    `median of ${ROUNDS} rounds`;
  figures[`${label}Ms`] = {
    value: Number(mNew.toFixed(1)),
    unit: 'ms per pass',
    baseline: Number(mBase.toFixed(1)),
    note: `${note}; baseline: the skipper at ${BASE}`,
  };
  figures[`${label}Speedup`] = {
    value: Number((mBase / mNew).toFixed(2)),
    unit: 'x (baseline time / new time)',
    note,
  };
  figures[`${label}MBps`] = { value: Math.round(bytes / 1e3 / mNew), unit: 'MB/s', note };
}
writeResult('avro-skip', figures);
