import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AsciiRequestParser } from '../src/protocol/ascii.js';
import { BinaryRequestParser, encodeBinaryStore, BinaryOpcode } from '../src/protocol/binary.js';
import {
  FrameDecoder,
  NO_ROOM_FOR_HEAD,
  type FrameParser,
  type HeldBytesBudget,
  type ParseCursor,
} from '../src/protocol/decoder.js';
import { ProtocolError, protocolError } from '../src/protocol/errors.js';
import { withLimits } from '../src/protocol/limits.js';
import { SKIPPED_VALUE } from '../src/protocol/lines.js';
import { chunkings, decodeChunks } from './support/chunks.js';

/**
 * A minimal length-prefixed format to exercise the decoder alone:
 * `<n>\n<n bytes>` per frame; a line that is not a number is an error.
 */
class LengthPrefixed implements FrameParser<string> {
  readonly limits = withLimits({ maxLineBytes: 16 });
  parse(buf: Buffer, start: number, cursor: ParseCursor): string | undefined {
    const lf = buf.indexOf(0x0a, start);
    if (lf < 0) {
      if (buf.length - start > this.limits.maxLineBytes) throw protocolError('line too long', buf, start);
      cursor.need = 0;
      return undefined;
    }
    const text = buf.toString('latin1', start, lf);
    if (!/^\d+$/.test(text)) throw protocolError('not a length', buf, start);
    const total = lf + 1 - start + Number(text);
    if (buf.length - start < total) {
      cursor.need = total;
      return undefined;
    }
    cursor.end = start + total;
    return buf.toString('latin1', lf + 1, start + total);
  }
}

describe('FrameDecoder', () => {
  const input = Buffer.from('3\nabc0\n10\n01234\n67891\nx', 'latin1');

  it('gives the same frames for every chunking', () => {
    for (const { name, chunks } of chunkings(input, 50)) {
      assert.deepEqual(decodeChunks(new LengthPrefixed(), chunks), ['abc', '', '01234\n6789', 'x'], name);
    }
  });

  it('copies a straddling frame once and keeps in-place views otherwise', () => {
    const decoder = new FrameDecoder(new LengthPrefixed());
    const frames: string[] = [];
    decoder.push(Buffer.from('5\nab'), (f) => frames.push(f));
    assert.equal(decoder.buffered, 4);
    decoder.push(Buffer.from('cde2\nxy'), (f) => frames.push(f));
    assert.deepEqual(frames, ['abcde', 'xy']);
    assert.equal(decoder.buffered, 0);
    assert.equal(decoder.offset, 11);
  });

  it('reports the absolute stream offset of a protocol error and stays failed', () => {
    const decoder = new FrameDecoder(new LengthPrefixed());
    decoder.push(Buffer.from('1\na'), () => {});
    assert.throws(
      () => decoder.push(Buffer.from('zz\n'), () => {}),
      (err: unknown) => err instanceof ProtocolError && err.offset === 3 && err.excerpt === 'zz\\n',
    );
    assert.throws(() => decoder.push(Buffer.from('1\na'), () => {}), ProtocolError);
    decoder.reset();
    const frames: string[] = [];
    decoder.push(Buffer.from('1\na'), (f) => frames.push(f));
    assert.deepEqual(frames, ['a']);
  });

  it('bounds a line that never ends, across chunks', () => {
    const decoder = new FrameDecoder(new LengthPrefixed());
    decoder.push(Buffer.from('1\na12345678'), () => {});
    assert.throws(
      () => decoder.push(Buffer.from('123456789'), () => {}),
      /line longer than 16 bytes at byte 3/,
    );
  });
});

/** A budget of `max` bytes that records what it holds at most. */
function budgetOf(max: number): HeldBytesBudget & { used: number; peak: number } {
  return {
    used: 0,
    peak: 0,
    take(bytes) {
      if (this.used + bytes > max) return false;
      this.used += bytes;
      this.peak = Math.max(this.peak, this.used);
      return true;
    },
    give(bytes) {
      this.used -= bytes;
    },
  };
}

/** Each frame as `key=value`, `key=SKIPPED` for a skipped data block, `(shed)` when the budget skipped it. */
function decodeWithBudget<F>(parser: FrameParser<F>, chunks: Buffer[], budget: HeldBytesBudget): string[] {
  const decoder = new FrameDecoder(parser, budget);
  const out: string[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk, (frame) => {
      const f = frame as { key: Buffer; value: Buffer };
      const value = f.value === SKIPPED_VALUE ? 'SKIPPED' : f.value.toString('latin1');
      out.push(`${f.key.toString('latin1')}=${value}${decoder.shedFrame ? ' (shed)' : ''}`);
    });
  }
  return out;
}

describe('FrameDecoder with a byte budget', () => {
  const observing = withLimits({ maxValueBytes: 1000, skipOversizeValues: true });
  // A value that spells commands: it must be skipped by its length, never read as requests.
  const forged = 'x\r\nset victim 0 0 6\r\nforged\r\n'.padEnd(60, 'y');
  const text = Buffer.from(`set big 0 0 60\r\n${forged}\r\nset small 0 0 2\r\nok\r\n`, 'latin1');

  it('holds a frame that straddles chunks within the budget, and gives the bytes back once it is whole', () => {
    for (const { name, chunks } of chunkings(text, 20)) {
      const budget = budgetOf(1000);
      const frames = decodeWithBudget(new AsciiRequestParser(observing), chunks, budget);
      assert.deepEqual(frames, [`big=${forged}`, 'small=ok'], name);
      assert.equal(budget.used, 0, name);
    }
  });

  it('skips a data block it has no room for by its declared length, at every split point', () => {
    for (const { name, chunks } of chunkings(text, 20)) {
      const budget = budgetOf(40);
      const frames = decodeWithBudget(new AsciiRequestParser(observing), chunks, budget);
      // Whole in the first chunk, it is parsed in place; split, there is no room to hold it and it is skipped.
      const whole = chunks[0]!.length >= text.indexOf('set small');
      assert.deepEqual(frames, [whole ? `big=${forged}` : 'big=SKIPPED (shed)', 'small=ok'], name);
      assert.ok(budget.peak <= 40 && budget.used === 0, name);
    }
  });

  it('skips a binary value it has no room for by the body length its header declared', () => {
    const value = Buffer.from(forged, 'latin1');
    const set = Buffer.concat(encodeBinaryStore(BinaryOpcode.Set, Buffer.from('big'), value, 0, 0));
    const next = Buffer.concat(
      encodeBinaryStore(BinaryOpcode.Set, Buffer.from('small'), Buffer.from('ok'), 0, 0),
    );
    const input = Buffer.concat([set, next]);
    for (const { name, chunks } of chunkings(input, 20)) {
      const budget = budgetOf(48);
      const frames = decodeWithBudget(new BinaryRequestParser(observing), chunks, budget);
      const inPlace = chunks[0]!.length >= set.length;
      assert.deepEqual(frames, [inPlace ? `big=${forged}` : 'big=SKIPPED (shed)', 'small=ok'], name);
      assert.ok(budget.peak <= 48 && budget.used === 0, name);
    }
  });

  it('refuses a line it has no room to hold with a protocol error, and gives back what it held on reset', () => {
    const budget = budgetOf(8);
    const decoder = new FrameDecoder(new AsciiRequestParser(observing), budget);
    decoder.push(Buffer.from('get k'), () => {});
    assert.equal(budget.used, 5);
    assert.throws(
      () => decoder.push(Buffer.from('ey1 key2'), () => {}),
      (err: unknown) => err instanceof ProtocolError && err.reason === NO_ROOM_FOR_HEAD,
    );
    decoder.reset();
    assert.equal(budget.used, 0);
  });
});
