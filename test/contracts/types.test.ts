import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { generateTypes } from '../../scripts/gen-types.ts';

test('src/contracts/types.gen.ts matches schemas/*.avsc (regenerate with scripts/gen-types.ts)', () => {
  const committed = readFileSync(new URL('../../src/contracts/types.gen.ts', import.meta.url), 'utf8');
  assert.equal(committed, generateTypes());
});

test('generated types carry every schema field', () => {
  const text = generateTypes();
  for (const field of [
    'request_id: string;',
    'objectives: null | Record<string, number>;',
    'raw: Buffer;',
    'pairs: ItemPair[];',
  ]) {
    assert.ok(text.includes(field), `missing ${field}`);
  }
});
