// `npm run build` (and the `prepare` script, which `npm ci` and `npm install` run in a checkout):
// compiles src/ to dist/ with tsc (tsconfig.build.json) and then writes dist/.build-stamp, which
// bin/rankdistill.mjs compares with the sources' times to decide whether dist/ is current.
// Without TypeScript (an install with --omit=dev) it builds nothing and says so: bin/ then runs
// the sources through tsx, a runtime dependency.
import { spawnSync } from 'node:child_process';
import { rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  console.error(
    'rankdistill build: typescript is not installed (--omit=dev?); bin/ will run src/ through tsx',
  );
  process.exit(0);
}
// A file removed from src/ must not live on in dist/.
rmSync(new URL('../dist/', import.meta.url), { recursive: true, force: true });
const started = Date.now();
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  console.error(`rankdistill build: tsc failed (exit ${r.status ?? r.signal}); dist/ is incomplete`);
  process.exit(1);
}
// Written last, so an interrupted build leaves no stamp and bin/ keeps using the sources; dated
// when tsc started, so a source saved while it ran counts as newer than the build.
const stamp = new URL('../dist/.build-stamp', import.meta.url);
writeFileSync(stamp, `${new Date(started).toISOString()}\n`);
utimesSync(stamp, started / 1000, started / 1000);
