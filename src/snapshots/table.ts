/**
 * The on-disk format of a snapshot's embedding tables (items, and optionally known users), made
 * for ANN libraries (hnswlib, FAISS) and for the exact recall in `recall.ts`:
 *
 * - `<name>.json` — header `{ "rows", "dim", "dtype": "float32", "byteOrder": "little",
 *   "layout": "row-major", "vectors": "<name>.f32", "ids": "<name>.ids" }`;
 * - `<name>.f32` — `rows × dim` little-endian float32, row-major (row r = bytes [4·r·dim, 4·(r+1)·dim));
 * - `<name>.ids` — UTF-8, one id per line, line r is the id of row r, each line ends in `\n`.
 *
 * Why raw float32 and not .npy or JSON: every ANN library and numpy reads it with one call
 * (`np.fromfile(path, '<f4').reshape(rows, dim)`), it maps straight onto a Float32Array, and it
 * costs 4 bytes per number. docs/SNAPSHOTS.md documents it with a numpy example.
 *
 * Pure: no fs. Encoding and decoding work on bytes so the writer and the loader decide the I/O.
 */
import { endianness } from 'node:os';
import { RankdistillError } from '../errors.ts';

/** An id → vector table: row r of `vectors` (length `ids.length × dim`) is the vector of `ids[r]`. */
export interface VectorTable {
  ids: readonly string[];
  dim: number;
  vectors: Float32Array;
}

/** The JSON header of a table file set. */
export interface TableHeader {
  rows: number;
  dim: number;
  dtype: 'float32';
  byteOrder: 'little';
  layout: 'row-major';
  vectors: string;
  ids: string;
}

const LITTLE = endianness() === 'LE';

function badTable(message: string, details: Record<string, unknown> = {}): RankdistillError {
  return new RankdistillError('TRAIN_INPUT_INVALID', message, { details });
}

/**
 * Checks a table before it is written: shape, ids (unique, no line breaks) and finite values, so a
 * snapshot never carries a table an ANN index or the recall would choke on.
 *
 * @throws RankdistillError TRAIN_INPUT_INVALID saying what was expected and what was found.
 * @example
 * validateTable('items', { ids: ['a'], dim: 2, vectors: Float32Array.of(1, 2) });
 */
export function validateTable(name: string, t: VectorTable): void {
  if (!Number.isInteger(t.dim) || t.dim <= 0)
    throw badTable(`table ${name}: expected a positive integer dim, found ${t.dim}`);
  if (t.vectors.length !== t.ids.length * t.dim)
    throw badTable(
      `table ${name}: expected ${t.ids.length}×${t.dim} = ${t.ids.length * t.dim} values, found ${t.vectors.length}`,
    );
  const seen = new Set<string>();
  for (const id of t.ids) {
    if (id.length === 0 || id.includes('\n') || id.includes('\r'))
      throw badTable(
        `table ${name}: ids must be non-empty and contain no line break, found ${JSON.stringify(id)}`,
      );
    if (seen.has(id)) throw badTable(`table ${name}: expected unique ids, found ${JSON.stringify(id)} twice`);
    seen.add(id);
  }
  for (let i = 0; i < t.vectors.length; i++) {
    const v = t.vectors[i] as number;
    if (!Number.isFinite(v)) {
      const row = Math.floor(i / t.dim);
      throw badTable(`table ${name}: expected finite values, found ${v} in row ${row} (id ${t.ids[row]})`);
    }
  }
}

/** Little-endian bytes of a Float32Array (a view when the machine is little-endian). */
export function float32ToLE(a: Float32Array): Uint8Array {
  if (LITTLE) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out = new Uint8Array(a.byteLength);
  const view = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) view.setFloat32(i * 4, a[i] as number, true);
  return out;
}

/** A Float32Array from little-endian bytes (copied, so it is aligned and owned). */
export function float32FromLE(bytes: Uint8Array): Float32Array {
  const n = bytes.byteLength / 4;
  const out = new Float32Array(n);
  if (LITTLE) {
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/**
 * The three files of a table named `name` (`<name>.json`, `<name>.f32`, `<name>.ids`).
 *
 * @example
 * const files = encodeTable('items', table); // [{ name: 'items.json', data }, ...]
 */
export function encodeTable(name: string, t: VectorTable): { name: string; data: Uint8Array }[] {
  validateTable(name, t);
  const header: TableHeader = {
    rows: t.ids.length,
    dim: t.dim,
    dtype: 'float32',
    byteOrder: 'little',
    layout: 'row-major',
    vectors: `${name}.f32`,
    ids: `${name}.ids`,
  };
  const ids = t.ids.length === 0 ? '' : `${t.ids.join('\n')}\n`;
  return [
    { name: `${name}.json`, data: Buffer.from(`${JSON.stringify(header, null, 2)}\n`) },
    { name: header.vectors, data: float32ToLE(t.vectors) },
    { name: header.ids, data: Buffer.from(ids, 'utf8') },
  ];
}

function corrupt(file: string, message: string): RankdistillError {
  return new RankdistillError('SNAPSHOT_CORRUPT', `snapshot file ${file}: ${message}`, { details: { file } });
}

/**
 * Parses a table header, checking every field.
 *
 * @throws RankdistillError SNAPSHOT_CORRUPT naming the file.
 * @example
 * const h = parseTableHeader('items.json', bytes); // { rows, dim, vectors: 'items.f32', ... }
 */
export function parseTableHeader(file: string, bytes: Uint8Array): TableHeader {
  let h: unknown;
  try {
    h = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw corrupt(file, `expected a JSON table header, found unparsable text (${(e as Error).message})`);
  }
  const o = h as Partial<TableHeader> | null;
  if (
    o === null ||
    typeof o !== 'object' ||
    !Number.isInteger(o.rows) ||
    (o.rows as number) < 0 ||
    !Number.isInteger(o.dim) ||
    (o.dim as number) <= 0 ||
    o.dtype !== 'float32' ||
    o.byteOrder !== 'little' ||
    o.layout !== 'row-major' ||
    typeof o.vectors !== 'string' ||
    typeof o.ids !== 'string'
  )
    throw corrupt(
      file,
      `expected {rows, dim, dtype: float32, byteOrder: little, layout: row-major, vectors, ids}, found ${JSON.stringify(h).slice(0, 200)}`,
    );
  return o as TableHeader;
}

/**
 * Decodes a table from its header and the bytes of its vector and id files, checking that they
 * agree (a truncated file shows up here even without checksums).
 *
 * @throws RankdistillError SNAPSHOT_CORRUPT naming the offending file.
 * @example
 * const t = decodeTable(header, f32Bytes, idsBytes); // { ids, dim, vectors }
 */
export function decodeTable(header: TableHeader, vectors: Uint8Array, ids: Uint8Array): VectorTable {
  const expectedBytes = header.rows * header.dim * 4;
  if (vectors.byteLength !== expectedBytes)
    throw corrupt(
      header.vectors,
      `expected ${header.rows}×${header.dim} float32 = ${expectedBytes} bytes, found ${vectors.byteLength}`,
    );
  const text = Buffer.from(ids).toString('utf8');
  if (header.rows > 0 && !text.endsWith('\n'))
    throw corrupt(header.ids, 'expected one id per line ending in a newline, found a cut last line');
  const list = header.rows === 0 && text === '' ? [] : text.slice(0, -1).split('\n');
  if (list.length !== header.rows)
    throw corrupt(header.ids, `expected ${header.rows} ids, found ${list.length}`);
  return { ids: list, dim: header.dim, vectors: float32FromLE(vectors) };
}
