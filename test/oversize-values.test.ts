/**
 * Values over the value limit, read by an observer (skipOversizeValues): the
 * data block is skipped by its declared length at any chunking, the frame is
 * handed out with SKIPPED_VALUE, and no byte of the value is read as a
 * command (DESIGN.md invariant 7).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AsciiRequest } from '../src/protocol/ascii-frames.js';
import { AsciiRequestParser } from '../src/protocol/ascii.js';
import { BinaryRequestParser, encodeBinaryStore, type BinaryRequest } from '../src/protocol/binary.js';
import { BinaryOpcode } from '../src/protocol/binary-opcodes.js';
import { ProtocolError } from '../src/protocol/errors.js';
import { withLimits } from '../src/protocol/limits.js';
import { SKIPPED_VALUE } from '../src/protocol/lines.js';
import { chunkings, decodeChunks } from './support/chunks.js';

const FORGED = '\r\nset victim 0 0 6\r\nforged\r\nmn\r\n';
const observing = withLimits({ maxValueBytes: 16, skipOversizeValues: true });

function keyOf(frame: AsciiRequest): string {
  return 'key' in frame && frame.key instanceof Buffer ? frame.key.toString('latin1') : frame.kind;
}

describe('over-limit values seen by an observer', () => {
  it('text and meta: skipped by length at every split, the frames after them intact', () => {
    const big = `xx${FORGED}yy`;
    const input = Buffer.from(
      `set big 1 0 ${big.length}\r\n${big}\r\n` +
        `ms meta ${big.length} T0\r\n${big}\r\n` +
        'set small 0 0 2\r\nok\r\n',
      'latin1',
    );
    for (const { name, chunks } of chunkings(input, 30)) {
      const frames = decodeChunks(new AsciiRequestParser(observing), chunks);
      assert.deepEqual(frames.map(keyOf), ['big', 'meta', 'small'], name);
      const [first, second, third] = frames as [AsciiRequest, AsciiRequest, AsciiRequest];
      assert.ok(first.kind === 'storage' && first.value === SKIPPED_VALUE, name);
      assert.ok(second.kind === 'meta' && second.value === SKIPPED_VALUE, name);
      assert.ok(third.kind === 'storage' && third.value.toString() === 'ok', name);
    }
  });

  it('binary: skipped by the body length at every split', () => {
    const input = Buffer.concat([
      ...encodeBinaryStore(BinaryOpcode.Set, Buffer.from('big'), Buffer.from(`zz${FORGED}`), 0, 0),
      ...encodeBinaryStore(BinaryOpcode.SetQ, Buffer.from('small'), Buffer.from('ok'), 3, 0),
    ]);
    for (const { name, chunks } of chunkings(input, 30)) {
      const frames = decodeChunks(new BinaryRequestParser(observing), chunks) as BinaryRequest[];
      assert.deepEqual(
        frames.map((f) => f.key.toString()),
        ['big', 'small'],
        name,
      );
      assert.equal(frames[0]!.value, SKIPPED_VALUE, name);
      assert.equal(frames[1]!.value.toString(), 'ok', name);
    }
  });

  it('a reader that forwards values still refuses them', () => {
    const input = Buffer.from(`set big 0 0 17\r\n${'a'.repeat(17)}\r\n`);
    assert.throws(
      () => decodeChunks(new AsciiRequestParser(withLimits({ maxValueBytes: 16 })), [input]),
      ProtocolError,
    );
  });
});
