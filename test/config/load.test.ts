import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { applyEnv, configDocs, envPath, loadConfig, parseConfig } from '../../src/config/index.ts';
import { ConfigError } from '../../src/errors.ts';

function issuesOf(raw: unknown): { path: string; message: string; value: unknown }[] {
  try {
    parseConfig(raw);
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.code, 'CONFIG_INVALID');
    return [...e.issues];
  }
  assert.fail('expected a ConfigError');
}

describe('config', () => {
  test('defaults are the ones DESIGN.md documents', () => {
    const c = parseConfig({});
    assert.equal(c.join.windowMs, 600_000);
    assert.equal(c.join.emitUnmatched, true);
    assert.equal(c.labels.pointwise.k, 5);
    assert.equal(c.labels.pointwise.weighting, 'reciprocal');
    assert.equal(c.labels.pointwise.a, 1);
    assert.equal(c.labels.pairwise.strategy, 'topk-vs-below');
    assert.equal(c.labels.pairwise.m, 4);
    assert.equal(c.labels.listwise.scheme, 'buckets');
    assert.equal(c.labels.listwise.bucketSize, 5);
    assert.equal(c.labels.listwise.maxGrade, 5);
    assert.equal(c.labels.teacher.signal, 'logits');
    assert.equal(c.labels.teacher.orderSource, 'ranker');
    assert.equal(c.kafka.commitIntervalMs, 100);
  });

  // One invalid value per field kind: each must be reported by its full path with the value found.
  const invalid: [string, unknown, unknown][] = [
    ['join.windowMs', { join: { windowMs: -5 } }, -5],
    ['join.allowedLatenessMs', { join: { allowedLatenessMs: 1.5 } }, 1.5],
    ['join.emitUnmatched', { join: { emitUnmatched: 'yes' } }, 'yes'],
    ['labels.teacher.signal', { labels: { teacher: { signal: 'probabilities' } } }, 'probabilities'],
    ['labels.teacher.objectiveWeights.ctr', { labels: { teacher: { objectiveWeights: { ctr: 'x' } } } }, 'x'],
    ['labels.teacher.orderSource', { labels: { teacher: { orderSource: 'user' } } }, 'user'],
    ['labels.pointwise.k', { labels: { pointwise: { k: 0 } } }, 0],
    ['labels.pointwise.weighting', { labels: { pointwise: { weighting: 'linear' } } }, 'linear'],
    ['labels.pointwise.temperature', { labels: { pointwise: { temperature: 0 } } }, 0],
    ['labels.pairwise.strategy', { labels: { pairwise: { strategy: 'all' } } }, 'all'],
    ['labels.pairwise.maxPairs', { labels: { pairwise: { maxPairs: -1 } } }, -1],
    ['labels.listwise.scheme', { labels: { listwise: { scheme: 'quantiles' } } }, 'quantiles'],
    ['labels.listwise.thresholds.1', { labels: { listwise: { thresholds: [0, 'a'] } } }, 'a'],
    ['kafka.brokers.0', { kafka: { brokers: ['nohostport'] } }, 'nohostport'],
    ['kafka.inputFormat', { kafka: { inputFormat: 'xml' } }, 'xml'],
    ['train.batchSize', { train: { batchSize: 0 } }, 0],
    ['metrics.port', { metrics: { port: 70000 } }, 70000],
  ];
  for (const [path, raw, value] of invalid) {
    test(`invalid ${path} is reported by name with the value found`, () => {
      const issues = issuesOf(raw);
      const hit = issues.find((i) => i.path === path);
      assert.ok(hit, `no issue for ${path} in ${JSON.stringify(issues)}`);
      assert.deepEqual(hit.value, value);
    });
  }

  test('several invalid fields are all reported at once', () => {
    const issues = issuesOf({
      join: { windowMs: 0 },
      labels: { pointwise: { k: -1 }, listwise: { maxGrade: 100 } },
    });
    assert.deepEqual(issues.map((i) => i.path).sort(), [
      'join.windowMs',
      'labels.listwise.maxGrade',
      'labels.pointwise.k',
    ]);
  });

  test('unknown (misspelt) options are refused, nested or not', () => {
    const issues = issuesOf({ join: { windowMS: 5 }, lables: {} });
    assert.deepEqual(issues.map((i) => i.path).sort(), ['join.windowMS', 'lables']);
    assert.match(issues[0]?.message ?? '', /unknown option/);
  });

  test('the error message names field, value and expectation', () => {
    assert.throws(
      () => parseConfig({ labels: { pointwise: { weighting: 'linear' } } }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /labels\.pointwise\.weighting/);
        assert.match(e.message, /"linear"/);
        assert.match(e.message, /reciprocal/);
        return true;
      },
    );
  });

  test('environment overrides map onto nested camelCase paths and are validated', () => {
    assert.deepEqual(envPath('JOIN__WINDOW_MS'), ['join', 'windowMs']);
    assert.deepEqual(envPath('LABELS__POINTWISE__SOFT_TARGETS'), ['labels', 'pointwise', 'softTargets']);
    const c = loadConfig({
      env: {
        RANKDISTILL_JOIN__WINDOW_MS: '60000',
        RANKDISTILL_KAFKA__BROKERS: '127.0.0.1:1, 127.0.0.1:2',
        RANKDISTILL_LABELS__POINTWISE__SOFT_TARGETS: 'true',
        RANKDISTILL_LABELS__TEACHER__OBJECTIVE_WEIGHTS: '{"ctr":0.6,"like":0.3,"dwell":0.1}',
      },
    });
    assert.equal(c.join.windowMs, 60_000);
    assert.deepEqual(c.kafka.brokers, ['127.0.0.1:1', '127.0.0.1:2']);
    assert.equal(c.labels.pointwise.softTargets, true);
    assert.deepEqual(c.labels.teacher.objectiveWeights, { ctr: 0.6, like: 0.3, dwell: 0.1 });
    assert.throws(() => loadConfig({ env: { RANKDISTILL_JOIN__WINDOW_MS: 'ten' } }), /join\.windowMs/);
    assert.deepEqual(applyEnv({ a: 1 }, {}), { a: 1 });
  });

  test('file (YAML and JSON) then environment: the environment wins', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rd-config-'));
    const yaml = join(dir, 'c.yaml');
    writeFileSync(yaml, 'join:\n  windowMs: 1000\nlabels:\n  pointwise:\n    k: 3\n');
    const json = join(dir, 'c.json');
    writeFileSync(json, JSON.stringify({ labels: { listwise: { scheme: 'logit-quantiles' } } }));
    const c = loadConfig({ file: yaml, env: { RANKDISTILL_JOIN__WINDOW_MS: '2000' } });
    assert.equal(c.join.windowMs, 2000);
    assert.equal(c.labels.pointwise.k, 3);
    assert.equal(loadConfig({ file: json, env: {} }).labels.listwise.scheme, 'logit-quantiles');
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'join: [1, 2\n');
    assert.throws(
      () => loadConfig({ file: broken, env: {} }),
      (e: unknown) => e instanceof ConfigError && e.code === 'CONFIG_UNREADABLE',
    );
    assert.throws(
      () => loadConfig({ file: join(dir, 'missing.yaml'), env: {} }),
      (e: unknown) => e instanceof ConfigError && /missing\.yaml/.test(e.message),
    );
  });

  test('the option reference documents every option with its default', () => {
    const docs = configDocs();
    for (const opt of [
      'join.windowMs',
      'labels.pointwise.weighting',
      'labels.pairwise.minRankGap',
      'kafka.topics.changelog',
    ]) {
      assert.match(docs, new RegExp(`\\| \`${opt.replaceAll('.', '\\.')}\` \\| \`[^|]+\` \\| \\S`));
    }
  });
});
