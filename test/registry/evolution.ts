// Writer schemas of RankerOutput as other producers might have them, for the schema-evolution
// tests (unit and integration): one generation older (no `context` field) and one newer (an extra
// `region` field with a default). Both must decode into our reader type.
import avro from 'avsc';
import type { Contracts } from '../../src/contracts/index.ts';
import { schemaJson } from '../../src/contracts/index.ts';

type RecordSchema = { type: 'record'; name: string; fields: { name: string }[] };

/** RankerOutput without the `context` field (an older producer). */
export function olderRankerOutputSchema(): avro.Schema {
  const s = structuredClone(schemaJson('RankerOutput')) as unknown as RecordSchema;
  s.fields = s.fields.filter((f) => f.name !== 'context');
  return s as unknown as avro.Schema;
}

/** RankerOutput with one extra field, `region` (string, default ""), after `model_version`. */
export function newerRankerOutputSchema(): avro.Schema {
  const s = structuredClone(schemaJson('RankerOutput')) as unknown as RecordSchema;
  const at = s.fields.findIndex((f) => f.name === 'model_version') + 1;
  s.fields.splice(at, 0, {
    name: 'region',
    type: 'string',
    default: '',
    doc: 'Data centre that served the request (added by a newer producer).',
  } as never);
  return s as unknown as avro.Schema;
}

/** Avro binary of `record` written with `schema`, framed as Confluent (magic 0 + id). */
export function frameWith(schema: avro.Schema, id: number, record: object): Buffer {
  const body = avro.Type.forSchema(schema, { wrapUnions: 'auto' }).toBuffer(record);
  const head = Buffer.alloc(5);
  head.writeInt32BE(id, 1);
  return Buffer.concat([head, body]);
}

export const sampleRanker: Contracts['RankerOutput'] = {
  request_id: 'r-evo-1',
  user_id: 'u-1',
  ts: 1_700_000_000_000,
  model_version: 'teacher-v7',
  context: { hour: 13 },
  items: [
    { item_id: 'i-1', score: 1.5, objectives: { ctr: 0.25 }, features: null },
    { item_id: 'i-2', score: -0.5, objectives: null, features: { price: 3 } },
  ],
};

/** The sample as the older producer wrote it (no context). */
export function olderSample(): Record<string, unknown> {
  const { context: _drop, ...rest } = sampleRanker;
  return rest;
}

/** The sample as the newer producer wrote it (with a region). */
export function newerSample(): Record<string, unknown> {
  return { ...sampleRanker, request_id: 'r-evo-3', region: 'eu-west' };
}

/** A decoded record as plain data (avsc decodes records into class instances). */
export function plain(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v));
}
