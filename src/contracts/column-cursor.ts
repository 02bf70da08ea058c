/**
 * The read position of the column parsers (src/contracts/ranker-columns.ts,
 * impression-columns.ts) and the Avro and byte primitives they share. One cursor for both: parsing is
 * synchronous and never re-entered, and each parse starts by resetting it.
 *
 * Pure: no I/O.
 */

/** Where the next read starts; `bad` once the record cannot take the column path; `strStart` of the last string. */
export const cur = { pos: 0, bad: false, strStart: 0 };

/**
 * Zig-zag varint at `cur.pos` as a safe integer; flags `cur.bad` past 7 bytes (beyond ±2^48).
 *
 * @example
 * cur.pos = 0; readLong(Buffer.from([3]), 1); // −2
 */
export function readLong(buf: Buffer, end: number): number {
  let b = 0;
  let n = 0;
  let shift = 0;
  let mul = 1;
  do {
    if (cur.pos >= end || shift > 42) {
      cur.bad = true;
      return 0;
    }
    b = buf[cur.pos++]!;
    if (shift < 28) n |= (b & 0x7f) << shift;
    else n += (b & 0x7f) * mul;
    shift += 7;
    mul *= 128;
  } while (b & 0x80);
  if (shift <= 28) n >>>= 0;
  // Zig-zag: even → n/2, odd → −(n+1)/2.
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

/**
 * An ASCII string at `cur.pos` (non-empty if asked): returns its end, its start in
 * `cur.strStart`; 0 and `cur.bad` when it is not one.
 *
 * @example
 * cur.pos = 0; readAsciiRange(Buffer.from([4, 0x61, 0x62]), 3, true); // 3 (cur.strStart 1)
 */
export function readAsciiRange(buf: Buffer, end: number, nonEmpty: boolean): number {
  const len = readLong(buf, end);
  if (cur.bad || len < 0 || cur.pos + len > end || (nonEmpty && len === 0)) {
    cur.bad = true;
    return 0;
  }
  cur.strStart = cur.pos;
  const stop = cur.pos + len;
  for (let i = cur.pos; i < stop; i++) {
    if (buf[i]! > 0x7f) {
      cur.bad = true;
      return 0;
    }
  }
  cur.pos = stop;
  return stop;
}

/**
 * {@link readAsciiRange} as a string ('' when `cur.bad`).
 *
 * @example
 * cur.pos = 0; readAscii(Buffer.from([4, 0x61, 0x62]), 3, true); // 'ab'
 */
export function readAscii(buf: Buffer, end: number, nonEmpty: boolean): string {
  const stop = readAsciiRange(buf, end, nonEmpty);
  return cur.bad ? '' : buf.toString('latin1', cur.strStart, stop);
}

/**
 * Whether a[aStart, aEnd) and b[bStart, bEnd) hold the same bytes (`a` and `b` may be one buffer).
 *
 * @example
 * sameBytes(buf, 0, 2, buf, 4, 6); // buf[0..2) equals buf[4..6)
 */
export function sameBytes(
  a: Buffer,
  aStart: number,
  aEnd: number,
  b: Buffer,
  bStart: number,
  bEnd: number,
): boolean {
  if (aEnd - aStart !== bEnd - bStart) return false;
  for (; aStart < aEnd; aStart++, bStart++) if (a[aStart] !== b[bStart]) return false;
  return true;
}
