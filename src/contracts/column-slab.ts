/**
 * Typed arrays for parsed columns (src/contracts/ranker-columns.ts, impression-columns.ts), carved
 * out of shared slabs.
 *
 * Why: in Node a `new ArrayBuffer` costs ~2 µs (a zeroed off-heap allocation whose backing store
 * is registered and counted as external memory, which also drives GCs), and so does each fresh
 * typed array over 64 bytes; a view into an existing buffer costs ~50 ns. Allocated per record,
 * the column arrays of a ranker output and an impression took ~5% of the labeler's CPU at 20
 * candidates. A slab is freed with its last view: holders of parsed columns keep them briefly
 * (the join operator bounds how long it caches them, see operator.ts).
 *
 * Pure: no I/O. Module state: allocation is synchronous and never re-entered.
 */

const SLAB_BYTES = 256 * 1024;
let slab = new ArrayBuffer(SLAB_BYTES);
let used = 0;

/** Byte offset of `bytes` fresh bytes (8-byte aligned) in `slab`, which may be replaced first. */
function carve(bytes: number): number {
  const size = (bytes + 7) & ~7;
  if (used + size > slab.byteLength) {
    slab = new ArrayBuffer(Math.max(SLAB_BYTES, size));
    used = 0;
  }
  const at = used;
  used += size;
  return at;
}

/**
 * An Int32Array of `n` elements in a shared slab (contents unspecified: the caller sets them).
 *
 * @example
 * const offsets = slabInt32(4 * n); offsets.set(scratch.subarray(0, 4 * n));
 */
export function slabInt32(n: number): Int32Array {
  const at = carve(4 * n);
  return new Int32Array(slab, at, n);
}

/**
 * A Float64Array of `n` elements in a shared slab (contents unspecified).
 *
 * @example
 * const scores = slabFloat64(n);
 */
export function slabFloat64(n: number): Float64Array {
  const at = carve(8 * n);
  return new Float64Array(slab, at, n);
}

/**
 * A Uint8Array of `n` elements in a shared slab (contents unspecified).
 *
 * @example
 * const clicked = slabUint8(m);
 */
export function slabUint8(n: number): Uint8Array {
  const at = carve(n);
  return new Uint8Array(slab, at, n);
}
