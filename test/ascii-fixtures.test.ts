import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AsciiRequestParser,
  AsciiResponseParser,
  flagTokenNumber,
  metaFlagNumber,
} from '../src/protocol/ascii.js';
import type { AsciiRequest, AsciiResponse } from '../src/protocol/ascii-frames.js';
import { FrameDecoder, type FrameParser } from '../src/protocol/decoder.js';
import { ProtocolError } from '../src/protocol/errors.js';
import { withLimits } from '../src/protocol/limits.js';
import { chunkings, decodeChunks, rng } from './support/chunks.js';
import {
  bigRequest,
  bigResponse,
  requestFixtures,
  responseFixtures,
  type Fixture,
} from './fixtures-ascii/fixtures.js';

function checkEveryChunking<F>(parser: () => FrameParser<F>, fixture: Fixture<F>): void {
  for (const { name, chunks } of chunkings(fixture.input, 20)) {
    assert.deepEqual(decodeChunks(parser(), chunks), fixture.frames, `${fixture.name}: ${name}`);
  }
}

/**
 * A 1 MiB fixture cannot be split at all of its million points in reasonable
 * time (each split re-joins the value), so it is split at every point of its
 * header and trailer, at a stride through the value, and at random.
 */
function checkBigFixture<F>(parser: () => FrameParser<F>, fixture: Fixture<F>): void {
  const input = fixture.input;
  assert.deepEqual(decodeChunks(parser(), [input]), fixture.frames, 'whole');
  const bytes = Array.from({ length: input.length }, (_, i) => input.subarray(i, i + 1));
  assert.deepEqual(decodeChunks(parser(), bytes), fixture.frames, 'byte by byte');
  const points = new Set<number>();
  for (let at = 1; at < 64; at++) points.add(at);
  for (let at = input.length - 64; at < input.length; at++) points.add(at);
  for (let at = 64; at < input.length - 64; at += 65_537) points.add(at);
  for (const at of points) {
    const chunks = [input.subarray(0, at), input.subarray(at)];
    assert.deepEqual(decodeChunks(parser(), chunks), fixture.frames, `split at ${at}`);
  }
  const random = rng(7);
  for (let n = 0; n < 10; n++) {
    const chunks: Buffer[] = [];
    for (let pos = 0; pos < input.length;) {
      const size = 1 + Math.floor(random() * 200_000);
      chunks.push(input.subarray(pos, pos + size));
      pos += size;
    }
    assert.deepEqual(decodeChunks(parser(), chunks), fixture.frames, `random split #${n}`);
  }
}

describe('AsciiRequestParser fixtures', () => {
  for (const fixture of requestFixtures) {
    it(`${fixture.name}: same frames for every chunking`, () => {
      checkEveryChunking(() => new AsciiRequestParser(), fixture);
    });
  }

  it('all fixtures pipelined back to back parse as one stream', () => {
    const input = Buffer.concat(requestFixtures.map((f) => f.input));
    const frames = requestFixtures.flatMap((f) => f.frames);
    for (const { name, chunks } of chunkings(input, 50, 3)) {
      if (name.startsWith('split at') && Number(name.slice(9)) % 7 !== 0) continue;
      assert.deepEqual(decodeChunks(new AsciiRequestParser(), chunks), frames, name);
    }
  });

  it(`${bigRequest.name}: whole, byte by byte, sampled and random splits`, () => {
    checkBigFixture(() => new AsciiRequestParser(withLimits({ maxValueBytes: 2 * 1024 * 1024 })), bigRequest);
  });

  it('hands out keys and values as views of the input, not copies', () => {
    const input = Buffer.from('set k 0 0 3\r\nabc\r\nget a b\r\n');
    const frames = decodeChunks(new AsciiRequestParser(), [input]);
    const set = frames[0];
    const get = frames[1];
    assert.ok(set?.kind === 'storage' && get?.kind === 'retrieval');
    assert.equal(set.value.buffer, input.buffer);
    assert.equal(set.value.byteOffset, input.byteOffset + 13);
    assert.equal(get.keys[1]?.buffer, input.buffer);
  });
});

describe('AsciiResponseParser fixtures', () => {
  for (const fixture of responseFixtures) {
    it(`${fixture.name}: same frames for every chunking`, () => {
      checkEveryChunking(() => new AsciiResponseParser(), fixture);
    });
  }

  it('all fixtures pipelined back to back parse as one stream', () => {
    const input = Buffer.concat(responseFixtures.map((f) => f.input));
    const frames = responseFixtures.flatMap((f) => f.frames);
    for (const { name, chunks } of chunkings(input, 50, 5)) {
      if (name.startsWith('split at') && Number(name.slice(9)) % 7 !== 0) continue;
      assert.deepEqual(decodeChunks(new AsciiResponseParser(), chunks), frames, name);
    }
  });

  it(`${bigResponse.name}: whole, byte by byte, sampled and random splits`, () => {
    checkBigFixture(() => new AsciiResponseParser(), bigResponse);
  });
});

/** Pushes `input` byte by byte and returns the ProtocolError it raises. */
function errorOf<F>(parser: FrameParser<F>, input: string | Buffer, whole = false): ProtocolError {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  const decoder = new FrameDecoder(parser);
  const chunks = whole ? [bytes] : Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
  try {
    for (const chunk of chunks) decoder.push(chunk, () => {});
  } catch (err) {
    assert.ok(err instanceof ProtocolError, `not a ProtocolError: ${String(err)}`);
    return err;
  }
  assert.fail('no ProtocolError raised');
}

describe('ASCII framing errors', () => {
  const req = (): AsciiRequestParser =>
    new AsciiRequestParser(withLimits({ maxLineBytes: 64, maxValueBytes: 100 }));
  const res = (): AsciiResponseParser =>
    new AsciiResponseParser(withLimits({ maxLineBytes: 64, maxValueBytes: 100 }));

  for (const whole of [true, false]) {
    const how = whole ? 'whole' : 'byte by byte';

    it(`${how}: a non-numeric data length, at its absolute offset, with an escaped excerpt`, () => {
      const err = errorOf(req(), 'get a\r\nset k 0 0 x\r\nabc\r\n', whole);
      assert.equal(err.offset, 17);
      // The excerpt quotes the frame from its start, as much of it as had arrived.
      assert.equal(err.excerpt, whole ? 'set k 0 0 x\\r\\nabc\\r\\n' : 'set k 0 0 x\\r\\n');
      assert.match(err.message, /data length is not a number at byte 17/);
      assert.equal(err.code, 'MEMSHIFT_ERR_PROTOCOL');
    });

    it(`${how}: a data block not followed by \\r\\n points at the byte after the value`, () => {
      const err = errorOf(req(), 'mn\r\nms k 3\r\nabcX\n', whole);
      assert.equal(err.offset, 15);
      assert.match(err.excerpt, /^ms k 3\\r\\nabcX\\n$/);
    });

    it(`${how}: a line over maxLineBytes, whether or not its end has arrived`, () => {
      assert.equal(errorOf(req(), `mn\r\nget ${'k'.repeat(70)}`, whole).offset, 4);
      assert.equal(errorOf(req(), `mn\r\nget ${'k'.repeat(70)}\r\n`, whole).offset, 4);
    });

    it(`${how}: a value over maxValueBytes, before any of it is buffered`, () => {
      const err = errorOf(req(), 'set k 0 0 101\r\n', whole);
      assert.equal(err.offset, 0);
      assert.match(err.reason, /101 bytes over the 100 byte limit/);
    });

    it(`${how}: storage lines that cannot be framed`, () => {
      assert.match(errorOf(req(), `set ${'k'.repeat(251)} 0 0 1\r\n`, whole).reason, /line longer/);
      const long = new AsciiRequestParser();
      assert.match(
        errorOf(long, `set ${'k'.repeat(251)} 0 0 1\r\nx\r\n`, whole).reason,
        /key longer than 250/,
      );
      assert.match(errorOf(req(), 'set k 0 0\r\n', whole).reason, /4 words instead of 5/);
      assert.match(errorOf(req(), 'set k x 0 1\r\nz\r\n', whole).reason, /client flags/);
      assert.match(errorOf(req(), 'set k 4294967296 0 1\r\nz\r\n', whole).reason, /client flags/);
      assert.match(errorOf(req(), 'cas k 0 0 1 -5\r\nz\r\n', whole).reason, /cas unique/);
      assert.match(errorOf(req(), 'ms k\r\n', whole).reason, /ms without a key and data length/);
      assert.match(errorOf(req(), 'ms k -1\r\n', whole).reason, /ms data length/);
      assert.match(errorOf(req(), 'ms !!!! 1 b\r\nx\r\n', whole).reason, /not valid base64/);
    });

    it(`${how}: replies that cannot be framed`, () => {
      assert.match(errorOf(res(), 'END\r\nVALUE k 0\r\n', whole).reason, /VALUE line with 3 words/);
      assert.equal(errorOf(res(), 'END\r\nVALUE k 0\r\n', whole).offset, 5);
      assert.match(errorOf(res(), 'VALUE k 0 zz\r\n', whole).reason, /data length/);
      assert.match(errorOf(res(), 'VA x\r\n', whole).reason, /VA data length/);
      assert.match(errorOf(res(), 'VA\r\n', whole).reason, /VA without a data length/);
      const err = errorOf(res(), 'HD\r\nVA 2 f0\r\nabc\r\n', whole);
      assert.equal(err.offset, 15);
    });
  }

  it('stays failed after a protocol error until reset', () => {
    const decoder = new FrameDecoder(req());
    assert.throws(() => decoder.push(Buffer.from('set k 0 0 y\r\n'), () => {}), ProtocolError);
    assert.throws(() => decoder.push(Buffer.from('mn\r\n'), () => {}), ProtocolError);
    decoder.reset();
    const frames: AsciiRequest[] = [];
    decoder.push(Buffer.from('mn\r\n'), (f) => frames.push(f));
    assert.equal(frames[0]?.kind, 'meta');
  });

  it('bounds what it buffers while a value arrives', () => {
    const decoder = new FrameDecoder<AsciiResponse>(res());
    decoder.push(Buffer.from('VALUE k 0 100\r\n'), () => {});
    decoder.push(Buffer.alloc(60), () => {});
    assert.equal(decoder.buffered, 75);
    const frames: AsciiResponse[] = [];
    decoder.push(Buffer.concat([Buffer.alloc(40), Buffer.from('\r\nEND\r\n')]), (f) => frames.push(f));
    assert.deepEqual(
      frames.map((f) => f.kind),
      ['value', 'end'],
    );
    assert.equal(decoder.buffered, 0);
  });
});

/** What `metaFlagNumber` must return: the first token starting with `letter`, read by `Number`. */
function numberByNumber(flags: readonly string[], letter: string): number | undefined {
  const token = flags.find((f) => f.startsWith(letter));
  return token === undefined ? undefined : Number(token.slice(1));
}

/** The letters a meta reply may carry, and two it never does. */
const LETTERS = ['O', 'f', 't', 's', 'c', 'k', 'b', 'h', 'l', 'W', 'X', 'Z', 'z', 'Q'];

/** Every meta reply in `frames` must read each flag's number as `Number(token.slice(1))` does. */
function checkFlagNumbers(frames: readonly AsciiResponse[], label: string): void {
  for (const frame of frames) {
    if (frame.kind !== 'meta') continue;
    for (const letter of LETTERS) {
      const got = metaFlagNumber(frame.flags, letter);
      assert.deepEqual(
        got,
        numberByNumber(frame.flags, letter),
        `${label}: ${letter} in ${frame.flags.join(' ')}`,
      );
    }
  }
}

describe('meta reply flags', () => {
  it('every response fixture: each flag read as a number equals Number(token.slice(1)), for every chunking', () => {
    for (const fixture of responseFixtures) {
      for (const { name, chunks } of chunkings(fixture.input, 5)) {
        checkFlagNumbers(decodeChunks(new AsciiResponseParser(), chunks), `${fixture.name}: ${name}`);
      }
    }
  });

  it('the replies of a copy batch, whole, byte by byte, at every split and at random splits', () => {
    const input = Buffer.from(
      'VA 3 f7 t-1 c48000007 O0\r\nabc\r\nHD c48000008\r\nHD t3600 c48000009 O999\r\n' +
        'HD s100 f4294967295 t0 c18446744073709551615 O12\r\nEN\r\nMN\r\n',
      'latin1',
    );
    const expected: [string, number | undefined][][] = [
      [
        ['O', 0],
        ['f', 7],
        ['t', -1],
        ['s', undefined],
      ],
      [
        ['O', undefined],
        ['f', undefined],
        ['t', undefined],
      ],
      [
        ['O', 999],
        ['t', 3600],
        ['f', undefined],
      ],
      [
        ['O', 12],
        ['f', 4294967295],
        ['t', 0],
        ['s', 100],
      ],
      [['O', undefined]],
      [['O', undefined]],
    ];
    for (const { name, chunks } of chunkings(input, 50, 11)) {
      const frames = decodeChunks(new AsciiResponseParser(), chunks);
      assert.equal(frames.length, expected.length, name);
      frames.forEach((frame, i) => {
        assert.ok(frame.kind === 'meta', name);
        for (const [letter, want] of expected[i]!) {
          assert.equal(metaFlagNumber(frame.flags, letter), want, `${name}: frame ${i} ${letter}`);
        }
      });
      checkFlagNumbers(frames, name);
    }
  });

  it('random reply lines: tokens split as memcached does, numbers read as Number reads them', () => {
    const random = rng(23);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    // Digits, signs, hex, exponents, lone letters, 15 and 16 digits: the fast path and the fallback.
    const bodies = [
      '',
      '0',
      '-',
      '-0',
      '-1',
      '7',
      '3600',
      '+5',
      '0x1f',
      '1e3',
      'abc',
      '12a',
      '007',
      '999999999999999',
      '-99999999999999',
      '9999999999999999',
      '18446744073709551615',
      '\t1',
    ];
    for (let n = 0; n < 400; n++) {
      const tokens = Array.from({ length: Math.floor(random() * 7) }, () => pick(LETTERS) + pick(bodies));
      const gaps = tokens.map(() => ' '.repeat(1 + Math.floor(random() * 3)));
      const code = pick(['HD', 'EN', 'NF', 'NS', 'EX']);
      const line = code + tokens.map((t, i) => gaps[i] + t).join('') + (random() < 0.5 ? ' ' : '');
      const input = Buffer.from(line + '\r\n', 'latin1');
      for (const { name, chunks } of chunkings(input, 3, n)) {
        if (name.startsWith('split at') && Number(name.slice(9)) % 5 !== 0) continue;
        const frames = decodeChunks(new AsciiResponseParser(), chunks);
        assert.deepEqual(
          frames,
          [{ kind: 'meta', code, flags: tokens, value: undefined }],
          `${line}: ${name}`,
        );
        checkFlagNumbers(frames, `${line}: ${name}`);
      }
      for (const token of tokens) assert.deepEqual(flagTokenNumber(token), Number(token.slice(1)), token);
    }
  });
});
