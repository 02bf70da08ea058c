// Regression (issue #24), Kafka path: the labeling service against a real broker refuses ranker
// outputs and impressions whose ids are not valid UTF-8 (dead letters with the reason, never
// rewritten to U+FFFD and joined), and labels the good records produced beside them exactly once.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Partitioners } from 'kafkajs';
import { decodeAvro, encodeAvro } from '../../src/contracts/codec.ts';
import { LabelService } from '../../src/pipeline/label-service.ts';
import { impression, patchBytes, ranker } from '../join/helpers.ts';
import { readAll, testConfig, testKafka, waitConsumed } from './label-helpers.ts';

const TS = 1_700_000_000_000;

describe('invalid UTF-8 in ids over Kafka', { timeout: 180_000 }, () => {
  const kafka = testKafka();
  const admin = kafka.admin();
  const work = mkdtempSync(join(tmpdir(), 'rd-utf8-it-'));
  const topics: string[] = [];
  before(() => admin.connect());
  after(async () => {
    if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
    await admin.disconnect();
    rmSync(work, { recursive: true, force: true });
  });

  test('bad ids become dead letters with a reason; the good records are labelled exactly once', async () => {
    const cfg = testConfig(join(work, 'state'), 1);
    const t = cfg.kafka.topics;
    topics.push(...Object.values(t));
    const enc = (r: ReturnType<typeof ranker>) => encodeAvro('RankerOutput', r);
    const bad: { rid: string | null; field: string; key: Buffer; value: Buffer; topic: string }[] = [
      {
        rid: 'bad-user-1',
        field: 'user_id',
        value: patchBytes(enc(ranker('bad-user-1', TS, 'uQQ')), 'QQ', [0xe9, 0xff]),
      },
      {
        rid: 'bad-user-2',
        field: 'user_id',
        value: patchBytes(enc(ranker('bad-user-2', TS, 'uQQ')), 'QQ', [0xe9, 0xfe]),
      },
      { rid: null, field: 'request_id', value: patchBytes(enc(ranker('bad-QQ', TS)), 'QQ', [0xc3, 0x28]) },
      {
        rid: 'bad-item',
        field: 'item_id',
        value: patchBytes(enc(ranker('bad-item', TS)), 'it3', [0x69, 0xff, 0x33]),
      },
    ].map((b) => ({ ...b, key: Buffer.from('k'), topic: t.rankerOutputs }));
    bad.push({
      rid: 'good-3',
      field: 'item_id',
      key: Buffer.from('u-good-3'),
      value: patchBytes(encodeAvro('Impression', impression('good-3', TS + 5)), 'it1', [0x69, 0xe9, 0x31]),
      topic: t.impressions,
    });
    const svc = new LabelService(cfg);
    await svc.start(); // creates the topics
    try {
      const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
      await producer.connect();
      const good = (id: string) => ({ key: `u-${id}`, value: enc(ranker(id, TS)) });
      await producer.send({
        topic: t.rankerOutputs,
        acks: -1,
        messages: [
          good('good-1'),
          ...bad.filter((b) => b.topic === t.rankerOutputs).map((b) => ({ key: b.key, value: b.value })),
          good('good-2'),
          good('good-3'),
        ],
      });
      await producer.send({
        topic: t.impressions,
        acks: -1,
        messages: [
          { key: 'u-good-1', value: encodeAvro('Impression', impression('good-1', TS + 10)) },
          ...bad.filter((b) => b.topic === t.impressions).map((b) => ({ key: b.key, value: b.value })),
        ],
      });
      // a far-future record moves the watermark past every window: good-2 and good-3 are emitted unmatched
      const far = TS + 3 * cfg.join.windowMs + cfg.join.allowedLatenessMs + 600_000;
      await producer.send({
        topic: t.rankerOutputs,
        acks: -1,
        messages: [good('zz-sentinel')].map((m) => ({ ...m, value: enc(ranker('zz-sentinel', far)) })),
      });
      await producer.disconnect();
      await waitConsumed(admin, cfg, 120_000);
    } finally {
      await svc.stop();
    }
    const recs = await readAll(kafka, admin, [t.pointwise, t.deadLetter]);
    const labelled = recs
      .filter((r) => r.topic === t.pointwise)
      .map((r) => {
        const d = decodeAvro('PointwiseLabels', r.value);
        assert.ok(d.ok);
        assert.ok(!d.value.user_id.includes('\uFFFD'));
        return `${d.value.request_id}:${d.value.matched}`;
      });
    assert.deepEqual(labelled.sort(), ['good-1:true', 'good-2:false', 'good-3:false']);
    const dead = recs
      .filter((r) => r.topic === t.deadLetter)
      .map((r) => {
        const d = decodeAvro('DeadLetter', r.value);
        assert.ok(d.ok);
        return d.value;
      });
    assert.equal(dead.length, bad.length, JSON.stringify(dead.map((d) => [d.request_id, d.reason])));
    for (const b of bad) {
      const d = dead.find(
        (x) => x.request_id === b.rid && x.reason.includes(`${b.field}`) && x.raw.equals(b.value),
      );
      assert.ok(
        d,
        `a dead letter for ${b.rid} (${b.field}): ${JSON.stringify(dead.map((x) => [x.request_id, x.reason]))}`,
      );
      assert.equal(d.reason_code, 'MALFORMED');
      assert.match(d.reason, /not valid UTF-8/);
    }
  });
});
