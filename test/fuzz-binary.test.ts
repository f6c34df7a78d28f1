/**
 * Random and mutated input for the binary parsers. Whatever the bytes, a
 * parser either yields frames or throws ProtocolError; the decoder never holds
 * more than one maximal packet; any chunking gives the same outcome; and every
 * frame it yields re-encodes to exactly the bytes it came from.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BinaryRequestParser,
  BinaryResponseParser,
  encodeBinaryRequest,
  encodeBinaryResponse,
  type BinaryRequest,
  type BinaryResponse,
} from '../src/protocol/binary.js';
import { FrameDecoder, type FrameParser } from '../src/protocol/decoder.js';
import { ProtocolError } from '../src/protocol/errors.js';
import { withLimits, type Limits } from '../src/protocol/limits.js';
import { rng } from './support/chunks.js';

const INPUTS_PER_PARSER = 100_000;
const LIMITS = withLimits({ maxValueBytes: 512 });
/** The most a decoder may buffer: one packet with the largest extras, key and value. */
const BOUND = 24 + 255 + LIMITS.maxKeyBytes + LIMITS.maxValueBytes;

type Random = () => number;

const int = (random: Random, below: number): number => Math.floor(random() * below);

function randomBytes(random: Random, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = int(random, 256);
  return out;
}

/** One well-formed packet of the given direction with small random fields. */
function validPacket(random: Random, magic: number): Buffer {
  const init = {
    opcode: random() < 0.8 ? int(random, 0x48) : int(random, 256),
    dataType: random() < 0.9 ? 0 : int(random, 256),
    opaque: int(random, 0x100000000),
    cas: random() < 0.5 ? 0n : BigInt(int(random, 0x100000000)) << BigInt(int(random, 33)),
    extras: randomBytes(random, [0, 0, 4, 8, 20][int(random, 5)] ?? 0),
    key: randomBytes(random, random() < 0.3 ? 0 : int(random, 40)),
    value: randomBytes(random, random() < 0.4 ? 0 : int(random, 120)),
  };
  const word = int(random, 0x10000);
  const parts =
    magic === 0x80
      ? encodeBinaryRequest({ ...init, vbucket: word })
      : encodeBinaryResponse({ ...init, status: word });
  return Buffer.concat(parts);
}

/** Header offsets whose corruption matters most: magic, lengths. */
const HOT_OFFSETS = [0, 2, 3, 4, 8, 9, 10, 11];

function mutate(random: Random, input: Buffer): Buffer {
  let out = Buffer.from(input);
  const mutations = 1 + int(random, 3);
  for (let m = 0; m < mutations && out.length > 0; m++) {
    const kind = int(random, 6);
    if (kind === 0) {
      out[int(random, out.length)] = int(random, 256);
    } else if (kind === 1) {
      // Corrupt a header field of the packet at a 24-byte boundary guess.
      const base = Math.min(out.length - 1, 24 * int(random, Math.ceil(out.length / 24)));
      const at = Math.min(out.length - 1, base + (HOT_OFFSETS[int(random, HOT_OFFSETS.length)] ?? 0));
      out[at] = random() < 0.5 ? 0xff : int(random, 256);
    } else if (kind === 2) {
      out = out.subarray(0, int(random, out.length));
    } else if (kind === 3) {
      const at = int(random, out.length);
      out = Buffer.concat([out.subarray(0, at), randomBytes(random, 1 + int(random, 8)), out.subarray(at)]);
    } else if (kind === 4) {
      const from = int(random, out.length);
      const to = from + int(random, out.length - from);
      out = Buffer.concat([out, out.subarray(from, to)]);
    } else {
      const at = int(random, out.length);
      out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + int(random, 4))]);
    }
  }
  return out;
}

function generate(random: Random, magic: number): Buffer {
  const kind = random();
  if (kind < 0.3) {
    const bytes = randomBytes(random, int(random, 200));
    if (bytes.length > 0 && random() < 0.7) bytes[0] = magic;
    return bytes;
  }
  const packets: Buffer[] = [];
  const count = 1 + int(random, 4);
  for (let i = 0; i < count; i++) packets.push(validPacket(random, magic));
  const stream = Buffer.concat(packets);
  return kind < 0.45 ? stream : mutate(random, stream);
}

function randomChunks(random: Random, input: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let pos = 0; pos < input.length;) {
    const size = 1 + int(random, random() < 0.3 ? 4 : 64);
    chunks.push(input.subarray(pos, pos + size));
    pos += size;
  }
  return chunks;
}

interface Outcome {
  readonly frames: number;
  /** Stream offset of the ProtocolError, or -1 when the input ended cleanly. */
  readonly errorAt: number;
  readonly consumed: number;
}

function run<F extends BinaryRequest | BinaryResponse>(
  parser: FrameParser<F>,
  encode: (frame: F) => Buffer[],
  input: Buffer,
  chunks: Buffer[],
): Outcome {
  const decoder = new FrameDecoder(parser);
  const frames: F[] = [];
  let pushed = 0;
  let errorAt = -1;
  for (const chunk of chunks) {
    try {
      decoder.push(chunk, (frame) => frames.push(frame));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      errorAt = err.offset;
      break;
    }
    pushed += chunk.length;
    assert.ok(decoder.buffered <= BOUND, `buffered ${decoder.buffered} bytes`);
    assert.equal(decoder.offset + decoder.buffered, pushed);
  }
  let at = 0;
  for (const frame of frames) {
    const bytes = Buffer.concat(encode(frame));
    assert.ok(
      bytes.equals(input.subarray(at, at + bytes.length)),
      `frame at ${at} does not re-encode to its bytes`,
    );
    at += bytes.length;
  }
  assert.equal(at, decoder.offset);
  return { frames: frames.length, errorAt, consumed: decoder.offset };
}

function fuzz<F extends BinaryRequest | BinaryResponse>(
  makeParser: (limits: Limits) => FrameParser<F>,
  encode: (frame: F) => Buffer[],
  magic: number,
  seed: number,
): { frames: number; errors: number } {
  const random = rng(seed);
  const parser = makeParser(LIMITS);
  let frames = 0;
  let errors = 0;
  for (let n = 0; n < INPUTS_PER_PARSER; n++) {
    const input = generate(random, magic);
    const whole = run(parser, encode, input, [input]);
    const split = run(parser, encode, input, randomChunks(random, input));
    assert.deepEqual(split, whole, `input #${n} of seed ${seed}: ${input.toString('hex')}`);
    frames += whole.frames;
    if (whole.errorAt >= 0) errors++;
  }
  return { frames, errors };
}

describe('binary parsers under random and mutated input', () => {
  it(`request parser: ${INPUTS_PER_PARSER} inputs`, () => {
    const { frames, errors } = fuzz((l) => new BinaryRequestParser(l), encodeBinaryRequest, 0x80, 1);
    // The generator must exercise both outcomes, or the test proves little.
    assert.ok(frames > INPUTS_PER_PARSER / 2, `only ${frames} frames`);
    assert.ok(errors > INPUTS_PER_PARSER / 4, `only ${errors} errors`);
  });

  it(`response parser: ${INPUTS_PER_PARSER} inputs`, () => {
    const { frames, errors } = fuzz((l) => new BinaryResponseParser(l), encodeBinaryResponse, 0x81, 2);
    assert.ok(frames > INPUTS_PER_PARSER / 2, `only ${frames} frames`);
    assert.ok(errors > INPUTS_PER_PARSER / 4, `only ${errors} errors`);
  });

  it('refuses headers that claim the largest lengths without buffering their bodies', () => {
    for (const magic of [0x80, 0x81]) {
      const parser = magic === 0x80 ? new BinaryRequestParser(LIMITS) : new BinaryResponseParser(LIMITS);
      for (const [keyLength, extrasLength, bodyLength] of [
        [0xffff, 0xff, 0xffffffff],
        [0, 0, 0xffffffff],
        [0, 0xff, 0xff + LIMITS.maxValueBytes + 1],
        [LIMITS.maxKeyBytes + 1, 0, LIMITS.maxKeyBytes + 1],
      ] as const) {
        const header = Buffer.alloc(24);
        header[0] = magic;
        header.writeUInt16BE(keyLength, 2);
        header[4] = extrasLength;
        header.writeUInt32BE(bodyLength, 8);
        const decoder = new FrameDecoder<BinaryRequest | BinaryResponse>(parser);
        decoder.push(header.subarray(0, 23), () => {});
        assert.throws(() => decoder.push(header.subarray(23), () => {}), ProtocolError);
      }
      // The largest legal packet is accepted and buffered up to the bound while incomplete.
      const header = Buffer.alloc(24);
      header[0] = magic;
      header.writeUInt16BE(LIMITS.maxKeyBytes, 2);
      header[4] = 0xff;
      header.writeUInt32BE(BOUND - 24, 8);
      const decoder = new FrameDecoder<BinaryRequest | BinaryResponse>(parser);
      const frames: unknown[] = [];
      decoder.push(Buffer.concat([header, Buffer.alloc(BOUND - 25)]), (f) => frames.push(f));
      assert.equal(decoder.buffered, BOUND - 1);
      decoder.push(Buffer.alloc(1), (f) => frames.push(f));
      assert.equal(frames.length, 1);
    }
  });
});
