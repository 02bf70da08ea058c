/**
 * `simulate(opts, sink)`: runs a {@link Simulation} and hands every record, in arrival order, to a
 * sink (files: src/io/sim-sink.ts; Kafka: src/kafka/sim-sink.ts; tests: a collecting sink), then
 * the ground truth and the world. The CLI command and the tests share this one function.
 */

import {
  resolveSimOptions,
  type SimEmission,
  type SimOptions,
  type SimTruth,
  Simulation,
} from './generate.ts';
import type { RecordEncoding } from './malformed.ts';
import type { World } from './world.ts';

/** One output of a sink (a file or a topic). */
export interface SinkOutput {
  /** File path or topic name. */
  name: string;
  records: number;
  bytes: number;
}

/** Where simulated records go. */
export interface SimSink {
  /** Encoding of the records; decides the truth's reason class of nan-score records. */
  readonly encoding: RecordEncoding;
  /** One record, in arrival order (both streams merged). A returned promise is awaited. */
  write(e: SimEmission): void | Promise<void>;
  /** All records were written: flush, then store the truth and the world (if the sink keeps them). */
  finish(truth: SimTruth, world: World): Promise<SinkOutput[]>;
  /** Something failed: discard partial outputs where possible. */
  abort(): Promise<void>;
}

/** What a simulation produced. */
export interface SimSummary {
  truth: SimTruth;
  outputs: SinkOutput[];
  /** Wall time of generation + writing, ms. */
  elapsedMs: number;
}

/**
 * Simulates `opts` (defaults filled in) into `sink`.
 *
 * @throws RankdistillError USAGE for bad options; whatever the sink throws (after sink.abort()).
 * @example
 * const summary = await simulate({ seed: 7, requests: 2000 }, new FileSimSink('out', 'ndjson'));
 * console.log(summary.truth.counts.fates);
 */
export async function simulate(opts: Partial<SimOptions>, sink: SimSink, world?: World): Promise<SimSummary> {
  const started = performance.now();
  const sim = new Simulation(resolveSimOptions(opts), sink.encoding, world);
  let outputs: SinkOutput[];
  try {
    for (const e of sim.emissions()) {
      const r = sink.write(e);
      if (r !== undefined) await r;
    }
    outputs = await sink.finish(sim.truth(), sim.world);
  } catch (e) {
    await sink.abort();
    throw e;
  }
  return { truth: sim.truth(), outputs, elapsedMs: performance.now() - started };
}
