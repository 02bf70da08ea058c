// kafkajs logs some routine, retried broker answers at ERROR; ours must not raise them as warnings.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { logLevel } from 'kafkajs';
import { kafkajsLevel } from '../../src/kafka/client.ts';

const CONCURRENT =
  'The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing';

test('routine, retried kafkajs errors are info; other errors stay warnings', () => {
  // as kafkajs's connection logs a response error, and as its producer logs the retried send
  assert.equal(
    kafkajsLevel(logLevel.ERROR, 'Response AddPartitionsToTxn(key: 24, version: 1)', CONCURRENT),
    'info',
  );
  assert.equal(kafkajsLevel(logLevel.ERROR, `Failed to send messages: ${CONCURRENT}`, undefined), 'info');
  assert.equal(
    kafkajsLevel(
      logLevel.ERROR,
      'Response Heartbeat(key: 12, version: 3)',
      'The group is rebalancing, so a rejoin is needed',
    ),
    'info',
  );
  // a fresh broker's coordinators: kafkajs retries FindCoordinator / InitProducerId until loaded
  assert.equal(
    kafkajsLevel(
      logLevel.ERROR,
      'Response GroupCoordinator(key: 10, version: 2)',
      'The group coordinator is not available',
    ),
    'info',
  );
  assert.equal(
    kafkajsLevel(
      logLevel.ERROR,
      'Response InitProducerId(key: 22, version: 1)',
      'This is not the correct coordinator for this group',
    ),
    'info',
  );
  assert.equal(
    kafkajsLevel(
      logLevel.ERROR,
      'Response InitProducerId(key: 22, version: 1)',
      "The coordinator is loading and hence can't process requests for this group",
    ),
    'info',
  );
  assert.equal(
    kafkajsLevel(
      logLevel.ERROR,
      'Response EndTxn(key: 26, version: 1)',
      'Producer attempted an operation with an old epoch',
    ),
    'warn',
  );
  assert.equal(
    kafkajsLevel(logLevel.ERROR, 'Failed to send messages: Broker not available', undefined),
    'warn',
  );
  assert.equal(
    kafkajsLevel(logLevel.ERROR, `Failed to send messages: ${CONCURRENT} (and more)`, undefined),
    'warn',
  );
  assert.equal(kafkajsLevel(logLevel.ERROR, 'Crash', undefined), 'warn');
  assert.equal(kafkajsLevel(logLevel.WARN, 'x', CONCURRENT), 'info');
  assert.equal(kafkajsLevel(logLevel.INFO, 'x', undefined), 'debug');
  assert.equal(kafkajsLevel(logLevel.DEBUG, 'x', undefined), 'debug');
});

test('a consumer crash kafkajs restarts from, and the idempotent-retries warning, do not alarm', () => {
  // kafkajs' consumer on a broker restart: "Crash: ..." and "Restarting the consumer in ..." at
  // ERROR (our CRASH listener logs the crash, at error only when kafkajs gives up).
  assert.equal(
    kafkajsLevel(logLevel.ERROR, 'Crash: KafkaJSNumberOfRetriesExceeded: Connection error', undefined),
    'info',
  );
  assert.equal(kafkajsLevel(logLevel.ERROR, 'Restarting the consumer in 2458ms', undefined), 'info');
  assert.equal(kafkajsLevel(logLevel.ERROR, 'Restarting the consumer in soon', undefined), 'warn');
  // our producers bound their retries on purpose (transactions abort on failure)
  assert.equal(
    kafkajsLevel(
      logLevel.WARN,
      'Limiting retries for the idempotent producer may invalidate EoS guarantees',
      undefined,
    ),
    'debug',
  );
  assert.equal(kafkajsLevel(logLevel.WARN, 'Limiting retries for something else', undefined), 'info');
});
