import { protocolError } from './errors.js';
import type { Limits } from './limits.js';
import type { ParseCursor } from './decoder.js';

const CR = 0x0d; // \r
const LF = 0x0a; // \n

/**
 * The words of one ASCII line, as offsets into the input: no strings, no
 * subarrays until a frame field needs one. One instance per parser is reused
 * for every line, so splitting allocates nothing once the arrays have grown to
 * the longest line seen.
 */
export class LineTokens {
  /** Offset of each word's first byte. */
  readonly starts: number[] = [];
  /** Offset just past each word. */
  readonly ends: number[] = [];
  count = 0;

  /**
   * Splits `buf[from, to)` on spaces, skipping empty words, as memcached's own
   * tokenizer does: runs of spaces separate one word, and a tab is part of a
   * word (protocol.txt, "Commands": "parameters ... delimited by whitespace";
   * memcached splits on the space byte only).
   */
  split(buf: Uint8Array, from: number, to: number): number {
    const starts = this.starts;
    const ends = this.ends;
    let n = 0;
    let i = from;
    while (i < to) {
      while (i < to && buf[i] === 0x20) i++;
      if (i === to) break;
      const s = i;
      while (i < to && buf[i] !== 0x20) i++;
      starts[n] = s;
      ends[n] = i;
      n++;
    }
    this.count = n;
    return n;
  }

  start(i: number): number {
    return this.starts[i]!;
  }

  end(i: number): number {
    return this.ends[i]!;
  }

  length(i: number): number {
    return this.ends[i]! - this.starts[i]!;
  }

  /** Whether word `i` is exactly the ASCII `text`. */
  is(buf: Uint8Array, i: number, text: string): boolean {
    const s = this.starts[i]!;
    if (this.ends[i]! - s !== text.length) return false;
    for (let k = 0; k < text.length; k++) if (buf[s + k] !== text.charCodeAt(k)) return false;
    return true;
  }

  /**
   * Words `from..count-1` as latin1 strings (one char per byte, so they encode
   * back to the same bytes). The words are cut from one decoded string of the
   * line's rest: each Buffer#toString is a call into C++ that costs more than
   * the short word it makes (a meta flag token is two to twenty bytes), while
   * a substring stays inside the JS engine.
   */
  strings(buf: Buffer, from: number): string[] {
    const n = this.count;
    if (from >= n) return [];
    const starts = this.starts;
    const ends = this.ends;
    if (n - from === 1) return [buf.toString('latin1', starts[from]!, ends[from]!)];
    const base = starts[from]!;
    const text = buf.toString('latin1', base, ends[n - 1]!);
    const out: string[] = [];
    for (let i = from; i < n; i++) out.push(text.substring(starts[i]! - base, ends[i]! - base));
    return out;
  }
}

/** Whether `buf[at, at + text.length)` holds the ASCII `text`. */
export function bytesAre(buf: Uint8Array, at: number, end: number, text: string): boolean {
  if (end - at < text.length) return false;
  for (let k = 0; k < text.length; k++) if (buf[at + k] !== text.charCodeAt(k)) return false;
  return true;
}

/**
 * The value of a frame whose data block was over the value limit: skipped by
 * its declared length, never buffered nor scanned (DESIGN.md invariant 7).
 * The frame's command and key are known, its value is not. Compare by identity.
 */
export const SKIPPED_VALUE: Buffer = Buffer.alloc(0);

/**
 * The data block that follows a line ending at `next` (the offset past its \n):
 * `len` bytes, then exactly \r\n (protocol.txt, "Storage commands": "<data
 * block>\r\n"). Returns a view of the bytes, or undefined after setting
 * `cursor.need` when the block has not fully arrived.
 *
 * A length over the value limit is never buffered. With
 * `limits.skipOversizeValues` the frame ends at the line and `cursor.skip`
 * tells the decoder to drop the block and its \r\n by their length, as
 * memcached swallows a value too large to store (SKIPPED_VALUE stands for the
 * value); otherwise it is a framing error. `cursor.shed` skips a block of
 * any length the same way (the decoder has no room to hold it).
 */
export function dataBlock(
  buf: Buffer,
  start: number,
  next: number,
  len: number,
  limits: Limits,
  cursor: ParseCursor,
): Buffer | undefined {
  const over = len > limits.maxValueBytes;
  if (over && limits.skipOversizeValues !== true) {
    throw protocolError(`data block of ${len} bytes over the ${limits.maxValueBytes} byte limit`, buf, start);
  }
  if (over || (cursor.shed === true && limits.skipOversizeValues === true)) {
    cursor.end = next;
    cursor.skip = len + 2;
    return SKIPPED_VALUE;
  }
  const valueEnd = next + len;
  if (buf.length < valueEnd + 2) {
    cursor.need = valueEnd + 2 - start;
    return undefined;
  }
  if (buf[valueEnd] !== CR || buf[valueEnd + 1] !== LF) {
    throw protocolError('data block not followed by \\r\\n', buf, valueEnd, start);
  }
  cursor.end = valueEnd + 2;
  return buf.subarray(next, valueEnd);
}

/**
 * Offset of the \n ending the line that starts at `start`, or -1 when it has
 * not arrived yet (then `cursor.need` is set to 0). Throws when the line is
 * longer than the limit, whether or not its end has arrived.
 */
export function lineEnd(buf: Buffer, start: number, limits: Limits, cursor: ParseCursor): number {
  const max = limits.maxLineBytes;
  const lf = buf.indexOf(LF, start);
  if (lf < 0) {
    if (buf.length - start > max) throw protocolError(`line longer than ${max} bytes`, buf, start);
    cursor.need = 0;
    return -1;
  }
  if (lf + 1 - start > max) throw protocolError(`line longer than ${max} bytes`, buf, start);
  return lf;
}

/** End of a line's content: the \n, or the \r before it (memcached accepts a bare \n from clients). */
export function contentEnd(buf: Uint8Array, start: number, lf: number): number {
  return lf > start && buf[lf - 1] === CR ? lf - 1 : lf;
}
