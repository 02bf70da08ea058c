/**
 * Shared plumbing of the benchmarks: machine facts and the results file format of DESIGN.md
 * (`bench/results/<name>.json`). Benchmarks are never asserted in tests.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';

export interface Figure {
  value: number;
  unit: string;
  baseline?: number;
  ratio?: number;
  goal?: number | string;
  note?: string;
}

export interface BenchResult {
  name: string;
  date: string;
  machine: { cpus: number; cpuModel: string; node: string; backend?: string };
  figures: Record<string, Figure>;
}

/** Writes `bench/results/<name>.json` and prints the figures; returns the path. */
export function writeResult(
  name: string,
  figures: Record<string, Figure>,
  extra: { backend?: string } = {},
): string {
  const result: BenchResult = {
    name,
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      ...(extra.backend === undefined ? {} : { backend: extra.backend }),
    },
    figures,
  };
  const dir = new URL('./results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  const path = new URL(`${name}.json`, dir);
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  for (const [k, f] of Object.entries(figures)) {
    const extraText = f.ratio === undefined ? '' : ` (ratio ${f.ratio.toFixed(3)} vs baseline ${f.baseline})`;
    console.log(
      `${name}.${k}: ${f.value} ${f.unit}${extraText}${f.goal === undefined ? '' : ` goal ${f.goal}`}`,
    );
  }
  return path.pathname;
}

/**
 * The q-quantile (0 ≤ q ≤ 1) of numbers sorted in ascending order: the element at ⌊q·n⌋, the last
 * one for q = 1; NaN for none.
 */
export function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}
