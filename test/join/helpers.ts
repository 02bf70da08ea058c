// Builders shared by the join tests: small valid records, their Avro bytes, and a task wired to
// the real label generators.
import { labelsSchema } from '../../src/config/schema.ts';
import { encodeAvro } from '../../src/contracts/codec.ts';
import type { Impression, RankerOutput } from '../../src/contracts/index.ts';
import { MemoryJoinStore } from '../../src/join/memory-store.ts';
import type { JoinWindowConfig } from '../../src/join/operator.ts';
import { JoinTask, type RawInput } from '../../src/join/task.ts';
import type { JoinInput, JoinStateStore } from '../../src/join/types.ts';
import { labelColumnsEncoded } from '../../src/labels/encoded.ts';
import { labelRequest } from '../../src/labels/index.ts';

export function ranker(id: string, ts: number, user = `u-${id}`): RankerOutput {
  return {
    request_id: id,
    user_id: user,
    ts,
    model_version: 'm1',
    context: null,
    items: [0, 1, 2, 3, 4, 5, 6].map((i) => ({
      item_id: `it${i}`,
      score: 3 - i * 0.5,
      objectives: null,
      features: null,
    })),
  };
}

export function impression(id: string, ts: number, user = `u-${id}`): Impression {
  return {
    request_id: id,
    user_id: user,
    ts,
    items: [
      { item_id: 'it1', position: 1, clicked: true, dwell_ms: 1200, actions: null },
      { item_id: 'it0', position: 2, clicked: false, dwell_ms: null, actions: null },
    ],
  };
}

let offsets = 0;
export function rIn(id: string, ts: number): JoinInput {
  const value = ranker(id, ts);
  return {
    side: 'ranker',
    value,
    source: { topic: 'ro', partition: 0, offset: offsets++ },
    key: Buffer.from(value.user_id),
    format: 'avro',
    raw: encodeAvro('RankerOutput', value),
  };
}
export function iIn(id: string, ts: number): JoinInput {
  const value = impression(id, ts);
  return {
    side: 'impression',
    value,
    source: { topic: 'imp', partition: 0, offset: offsets++ },
    key: Buffer.from(value.user_id),
    format: 'avro',
    raw: encodeAvro('Impression', value),
  };
}

export function rawR(offset: number, id: string, ts: number): RawInput {
  const v = ranker(id, ts);
  return { offset, key: Buffer.from(v.user_id), raw: encodeAvro('RankerOutput', v) };
}
export function rawI(offset: number, id: string, ts: number): RawInput {
  const v = impression(id, ts);
  return { offset, key: Buffer.from(v.user_id), raw: encodeAvro('Impression', v) };
}

export const labelsCfg = labelsSchema.parse({});

/** A task over the real generators; `columns`: with the column path (labelColumnsEncoded). */
export function newTask(
  join: JoinWindowConfig,
  store: JoinStateStore = new MemoryJoinStore(),
  columns = false,
): JoinTask {
  return new JoinTask({
    partition: 0,
    topics: { ranker: 'ro', impression: 'imp' },
    store,
    join,
    label: (req) => labelRequest(req, labelsCfg),
    inputFormat: 'avro',
    now: () => 0,
    ...(columns ? { columns: (r, imp) => labelColumnsEncoded(r, imp, labelsCfg) } : {}),
  });
}

/**
 * `bytes` with the first occurrence of the ASCII `marker` replaced by `raw` (same length): puts
 * bytes no encoder would write (invalid UTF-8) into an encoded record.
 */
export function patchBytes(bytes: Buffer, marker: string, raw: number[]): Buffer {
  const at = bytes.indexOf(marker);
  if (at < 0 || marker.length !== raw.length)
    throw new Error(`patchBytes: marker ${marker} not found or not ${raw.length} bytes`);
  const out = Buffer.from(bytes);
  Buffer.from(raw).copy(out, at);
  return out;
}
