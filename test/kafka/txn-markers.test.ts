import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isTooLargeError, MIN_MAX_MESSAGE_BYTES, markerRoomMessage } from '../../src/kafka/txn-markers.ts';

test('isTooLargeError: the broker refusing a batch as too large, also wrapped by kafkajs', () => {
  assert.equal(isTooLargeError({ type: 'MESSAGE_TOO_LARGE' }), true);
  assert.equal(isTooLargeError({ type: 'RECORD_LIST_TOO_LARGE' }), true);
  // kafkajs' retrier bails with a KafkaJSNonRetriableError that keeps the message only.
  assert.equal(
    isTooLargeError(
      new Error('The request included a message larger than the max message size the server will accept'),
    ),
    true,
  );
  assert.equal(isTooLargeError(new Error('x', { cause: { type: 'MESSAGE_TOO_LARGE' } })), true);
  assert.equal(isTooLargeError({ errors: [{ type: 'NOT_LEADER' }, { type: 'MESSAGE_TOO_LARGE' }] }), true);
  assert.equal(isTooLargeError({ type: 'CONCURRENT_TRANSACTIONS' }), false);
  assert.equal(isTooLargeError(new Error('broker down')), false);
  assert.equal(isTooLargeError(null), false);
  const loop: { cause?: unknown } = {};
  loop.cause = loop;
  assert.equal(isTooLargeError(loop), false, 'a cyclic cause chain ends');
});

test('markerRoomMessage names each topic, its limit, the minimum and the remedy', () => {
  const m = markerRoomMessage([
    { topic: 'labels.pointwise', maxMessageBytes: 64 },
    { topic: 'dead', maxMessageBytes: 100 },
  ]);
  assert.match(m, /labels\.pointwise \(max\.message\.bytes=64\), dead \(max\.message\.bytes=100\)/);
  assert.match(m, new RegExp(`below ${MIN_MAX_MESSAGE_BYTES}`));
  assert.match(m, /CONCURRENT_TRANSACTIONS/);
  assert.match(m, /restart the broker/);
  assert.ok(!m.includes('\n'), 'one line');
});
