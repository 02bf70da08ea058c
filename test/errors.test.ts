import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ConfigError,
  DecodeError,
  ERROR_CODES,
  isRankdistillError,
  LabelInputError,
  RankdistillError,
} from '../src/errors.ts';

test('the error catalogue: every code is upper snake case with a retriable flag', () => {
  const codes = Object.keys(ERROR_CODES);
  assert.ok(codes.length >= 10);
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    assert.match(code, /^[A-Z][A-Z0-9_]+$/);
    assert.equal(typeof spec.retriable, 'boolean');
  }
  assert.equal(new Set(codes).size, codes.length);
});

test('errors carry name, code, retriable and details; guards narrow by code', () => {
  const e = new RankdistillError('KAFKA_UNAVAILABLE', 'broker 127.0.0.1:1 refused', {
    details: { broker: '127.0.0.1:1' },
  });
  assert.equal(e.name, 'RankdistillError');
  assert.equal(e.retriable, true);
  assert.equal(e.details.broker, '127.0.0.1:1');
  assert.ok(isRankdistillError(e, 'KAFKA_UNAVAILABLE'));
  assert.ok(!isRankdistillError(e, 'CONFIG_INVALID'));
  assert.ok(!isRankdistillError(new Error('x')));
  const subclasses: [RankdistillError, string, string][] = [
    [new ConfigError('bad', []), 'ConfigError', 'CONFIG_INVALID'],
    [new DecodeError('bad'), 'DecodeError', 'DECODE_FAILED'],
    [new LabelInputError('bad'), 'LabelInputError', 'LABEL_INPUT_INVALID'],
  ];
  for (const [err, name, code] of subclasses) {
    assert.equal(err.name, name);
    assert.equal(err.code, code);
    assert.ok(err instanceof RankdistillError);
  }
});
