/**
 * `npm run bench [name]`: runs one benchmark suite (bench/<name>.ts) or all of them, each in its
 * own process so one suite's heap and JIT state do not colour the next.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.replace(/\.bench\.ts$/, ''))
  .sort();
const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : all;
let failed = 0;
for (const name of names) {
  const file = `${dir}${name}.bench.ts`;
  if (!existsSync(file)) {
    console.error(`no benchmark named ${name}; have: ${all.join(', ')}`);
    process.exit(2);
  }
  console.log(`== bench ${name}`);
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', file], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
