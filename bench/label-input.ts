/**
 * The synthetic input of the label benchmarks (bench:label, bench/thread-probe.ts): a ranker
 * output of `n` candidates per request and its impression of the top 10, one click.
 */
import type { Impression, RankerOutput } from '../src/contracts/index.ts';

export function ranker(seq: number, n: number, ts: number): RankerOutput {
  return {
    request_id: `req-${seq}`,
    user_id: `user-${seq % 997}`,
    ts,
    model_version: 'teacher-v1',
    context: { hour: seq % 24, device: seq % 3 },
    items: Array.from({ length: n }, (_, i) => ({
      item_id: `item-${String((seq * 7919 + i * 104729) % 10_000_000).padStart(7, '0')}`,
      score: 4 - (8 * i) / n,
      objectives: null,
      features: { price: (i % 50) + 0.5, ctr7d: 0.01 * (i % 7) },
    })),
  };
}

export function impression(r: RankerOutput, ts: number): Impression {
  return {
    request_id: r.request_id,
    user_id: r.user_id,
    ts,
    items: r.items.slice(0, 10).map((it, i) => ({
      item_id: it.item_id,
      position: i + 1,
      clicked: i === 1,
      dwell_ms: null,
      actions: null,
    })),
  };
}
