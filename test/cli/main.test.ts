// One exit-code scheme for every command: 0 done (help too), 2 an error rankdistill reports in one
// line, commander's usage errors included (they exited 1 before, the application's usage errors 2).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildProgram, commandOf, main } from '../../src/cli/main.ts';

async function run(t: import('node:test').TestContext, ...args: string[]) {
  const err = t.mock.method(process.stderr, 'write', () => true);
  const out = t.mock.method(process.stdout, 'write', () => true);
  const log = t.mock.method(console, 'error', () => {});
  try {
    return await main(['node', 'rankdistill', ...args]);
  } finally {
    err.mock.restore();
    out.mock.restore();
    log.mock.restore();
  }
}

test('exit codes: help 0; unknown option, missing argument and application usage errors 2', async (t) => {
  assert.equal(await run(t, '--help'), 0);
  assert.equal(await run(t, 'snapshots', 'list', '--no-such-option'), 2);
  assert.equal(await run(t, 'snapshots', 'show'), 2, 'missing <version>');
  assert.equal(await run(t, 'no-such-command'), 2);
  assert.equal(await run(t, 'recall', '--user', 'u1', '--k', 'many'), 2, 'USAGE from the application');
});

test('only the named command is loaded; help, a typo or no command load them all', async () => {
  const argv = (...a: string[]) => ['node', 'rankdistill', ...a];
  assert.equal(commandOf(argv('replay', '--in', 'x')), 'replay');
  assert.equal(commandOf(argv('-c', 'conf.yaml', 'label')), 'label');
  assert.equal(commandOf(argv('--config', 'conf.yaml', 'train')), 'train');
  assert.equal(commandOf(argv('--config=conf.yaml', 'snapshots', 'list')), 'snapshots');
  assert.equal(commandOf(argv('-cconf.yaml', 'up')), 'up');
  assert.equal(commandOf(argv('--help')), null);
  assert.equal(commandOf(argv('no-such-command')), null);
  assert.equal(commandOf(argv()), null);
  assert.equal(commandOf(argv('-c', 'replay')), null, 'replay is the config file here');
  const all = (await buildProgram()).commands.map((c) => c.name());
  assert.deepEqual(all, [
    'demo',
    'config',
    'train',
    'label',
    'snapshots',
    'recall',
    'simulate',
    'up',
    'replay',
    'acls',
  ]);
  assert.deepEqual(
    (await buildProgram('replay')).commands.map((c) => c.name()),
    ['replay'],
  );
});
