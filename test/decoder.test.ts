import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameDecoder, type FrameParser, type ParseCursor } from '../src/protocol/decoder.js';
import { ProtocolError, protocolError } from '../src/protocol/errors.js';
import { withLimits } from '../src/protocol/limits.js';
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
