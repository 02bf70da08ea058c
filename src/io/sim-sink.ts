/**
 * The simulator's file sink: `<dir>/ranker-outputs.<ext>`, `<dir>/impressions.<ext>` (NDJSON or
 * Avro containers, written atomically by {@link RecordWriter}), `<dir>/truth.json` (the ground
 * truth, see SimTruth in src/sim/generate.ts) and `<dir>/world.json` + `<dir>/world.bin` (the world:
 * a JSON header naming each little-endian array's offset, shape and dtype in the binary file; see
 * serializeWorld in src/sim/world.ts).
 */
import { join } from 'node:path';
import type { SimEmission, SimTruth } from '../sim/generate.ts';
import { malformedBytes, type RecordEncoding } from '../sim/malformed.ts';
import type { SimSink, SinkOutput } from '../sim/simulate.ts';
import { serializeWorld, type World } from '../sim/world.ts';
import { extensionOf, type FileFormat, RecordWriter, writeFileAtomic } from './files.ts';

/** File names of a simulation directory. */
export function simFiles(dir: string, format: FileFormat) {
  const ext = extensionOf(format);
  return {
    rankerOutputs: join(dir, `ranker-outputs.${ext}`),
    impressions: join(dir, `impressions.${ext}`),
    truth: join(dir, 'truth.json'),
    worldHeader: join(dir, 'world.json'),
    worldBinary: join(dir, 'world.bin'),
  };
}

/**
 * Writes truth.json and world.json + world.bin into `dir` (also used by the Kafka mode when an
 * output directory is given).
 *
 * @example
 * const outs = writeTruthAndWorld('out', truth, world);
 */
export function writeTruthAndWorld(dir: string, truth: SimTruth, world: World): SinkOutput[] {
  const f = simFiles(dir, 'ndjson');
  const truthText = `${JSON.stringify(truth)}\n`;
  writeFileAtomic(f.truth, truthText);
  const { header, binary } = serializeWorld(world, 'world.bin');
  writeFileAtomic(f.worldBinary, binary);
  const headerText = `${JSON.stringify(header, null, 2)}\n`;
  writeFileAtomic(f.worldHeader, headerText);
  return [
    { name: f.truth, records: Object.keys(truth.requests).length, bytes: Buffer.byteLength(truthText) },
    { name: f.worldHeader, records: 1, bytes: Buffer.byteLength(headerText) },
    { name: f.worldBinary, records: 1, bytes: binary.length },
  ];
}

/**
 * Sink writing a simulation into a directory.
 *
 * @example
 * await simulate({ seed: 7, requests: 2000 }, new FileSimSink('out', 'avro'));
 */
export class FileSimSink implements SimSink {
  readonly encoding: RecordEncoding;
  readonly dir: string;
  readonly format: FileFormat;
  #ranker: RecordWriter<'RankerOutput'>;
  #impressions: RecordWriter<'Impression'>;

  constructor(dir: string, format: FileFormat = 'ndjson') {
    this.dir = dir;
    this.format = format;
    this.encoding = format === 'avro' ? 'avro' : 'json';
    const f = simFiles(dir, format);
    this.#ranker = RecordWriter.open(f.rankerOutputs, 'RankerOutput', format);
    this.#impressions = RecordWriter.open(f.impressions, 'Impression', format);
  }

  write(e: SimEmission): void {
    if (e.malformed !== null) {
      const bytes = malformedBytes(e.name, e.record, e.malformed, this.encoding);
      if (e.stream === 'rankerOutputs') this.#ranker.writeRaw(bytes);
      else this.#impressions.writeRaw(bytes);
    } else if (e.stream === 'rankerOutputs') this.#ranker.write(e.record);
    else this.#impressions.write(e.record);
  }

  async finish(truth: SimTruth, world: World): Promise<SinkOutput[]> {
    await this.#ranker.close();
    await this.#impressions.close();
    return [
      { name: this.#ranker.path, records: this.#ranker.records, bytes: this.#ranker.bytes },
      { name: this.#impressions.path, records: this.#impressions.records, bytes: this.#impressions.bytes },
      ...writeTruthAndWorld(this.dir, truth, world),
    ];
  }

  async abort(): Promise<void> {
    await this.#ranker.abort();
    await this.#impressions.abort();
  }
}
