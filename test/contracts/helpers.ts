// Byte corruptions shared by the column-parser tests: random set / cut / insert edits of an
// encoded record.
import fc from 'fast-check';

export interface ByteEdit {
  at: number;
  byte: number;
  op: 'set' | 'cut' | 'insert';
}

/** One to three edits at arbitrary positions (taken modulo the length when applied). */
export const arbByteEdits = fc.array(
  fc.record({ at: fc.nat(), byte: fc.nat(255), op: fc.constantFrom<ByteEdit['op']>('set', 'cut', 'insert') }),
  { minLength: 1, maxLength: 3 },
);

/** `raw` with the edits applied in order (overwrite a byte, truncate, or insert a byte). */
export function applyByteEdits(raw: Buffer, edits: readonly ByteEdit[]): Buffer {
  let out = raw;
  for (const e of edits) {
    const at = e.at % (out.length + 1);
    if (e.op === 'set' && at < out.length) out[at] = e.byte;
    else if (e.op === 'cut') out = out.subarray(0, at);
    else if (e.op === 'insert')
      out = Buffer.concat([out.subarray(0, at), Buffer.from([e.byte]), out.subarray(at)]);
  }
  return out;
}
