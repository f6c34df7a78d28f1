import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  BINARY_NO_AUTO_CREATE,
  BinaryOpcode,
  BinaryRequestParser,
  BinaryResponseParser,
  BinaryStatus,
  binaryArithmeticDelta,
  binaryArithmeticExpiration,
  binaryArithmeticInitial,
  binaryCounterValue,
  binaryFlushExpiration,
  binaryOpcodeName,
  binaryRequestProblem,
  binaryResponseFlags,
  binaryStatusText,
  binaryStoreExpiration,
  binaryStoreFlags,
  binaryTouchExpiration,
  binaryVerbosityLevel,
  encodeBinaryArithmetic,
  encodeBinaryConcat,
  encodeBinaryDelete,
  encodeBinaryFlush,
  encodeBinaryGet,
  encodeBinaryNoop,
  encodeBinaryQuit,
  encodeBinaryRequest,
  encodeBinaryResponse,
  encodeBinaryStat,
  encodeBinaryStore,
  encodeBinaryTouch,
  encodeBinaryVerbosity,
  encodeBinaryVersion,
  isQuiet,
  loudOf,
  quietOf,
  type BinaryOpcodeName,
  type BinaryRequest,
  type BinaryRequestInit,
  type BinaryResponse,
  type BinaryResponseInit,
} from '../src/protocol/binary.js';
import { FrameDecoder, type FrameParser, type ParseCursor } from '../src/protocol/decoder.js';
import { ProtocolError } from '../src/protocol/errors.js';
import { withLimits } from '../src/protocol/limits.js';
import { chunkings, decodeChunks, rng } from './support/chunks.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

/** Bytes written as the spec draws them: hex, any whitespace, and 'quoted text'. */
function bytes(text: string): Buffer {
  const parts: Buffer[] = [];
  for (const token of text.match(/'[^']*'|[0-9a-fA-F]{2}/g) ?? []) {
    parts.push(token.startsWith("'") ? Buffer.from(token.slice(1, -1), 'latin1') : Buffer.from(token, 'hex'));
  }
  return Buffer.concat(parts);
}

const b = (text: string): Buffer => Buffer.from(text, 'latin1');
const join = (...packets: Buffer[][]): Buffer => Buffer.concat(packets.flat());
const EMPTY = Buffer.alloc(0);

function request(init: BinaryRequestInit): BinaryRequest {
  return {
    magic: 0x80,
    opcode: init.opcode,
    dataType: init.dataType ?? 0,
    vbucket: init.vbucket ?? 0,
    opaque: init.opaque ?? 0,
    cas: init.cas ?? 0n,
    extras: init.extras ?? EMPTY,
    key: init.key ?? EMPTY,
    value: init.value ?? EMPTY,
  };
}

function response(init: BinaryResponseInit): BinaryResponse {
  return {
    magic: 0x81,
    opcode: init.opcode,
    dataType: init.dataType ?? 0,
    status: init.status ?? 0,
    opaque: init.opaque ?? 0,
    cas: init.cas ?? 0n,
    extras: init.extras ?? EMPTY,
    key: init.key ?? EMPTY,
    value: init.value ?? EMPTY,
  };
}

/** Every chunking of `input` must give exactly `expected`. */
function assertFrames<F>(parser: FrameParser<F>, input: Buffer, expected: F[], randomSplits = 20): void {
  for (const { name, chunks } of chunkings(input, randomSplits)) {
    assert.deepEqual(decodeChunks(parser, chunks), expected, name);
  }
}

function throwsProtocolError(fn: () => unknown, offset: number, reason: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `not a ProtocolError: ${String(err)}`);
    assert.equal(err.offset, offset, err.message);
    assert.match(err.reason, reason);
    return true;
  });
}

// The examples of reference/memcached-protocol-binary.txt, byte for byte.
const SPEC = {
  // 4.1.1: an error response.
  notFound: bytes(
    `81 00 00 00  00 00 00 01  00 00 00 09  00 00 00 00  00 00 00 00  00 00 00 00  'Not found'`,
  ),
  // 4.2.1
  getRequest: bytes(`80 00 00 05  00 00 00 00  00 00 00 05  00 00 00 00  00 00 00 00  00 00 00 00  'Hello'`),
  getResponse: bytes(`81 00 00 00  04 00 00 00  00 00 00 09  00 00 00 00  00 00 00 00  00 00 00 01
    de ad be ef  'World'`),
  // The draft's drawing shows a body length of 0x09 here but its field table
  // (and the byte count, 14) says 0x0000000E; the table is right.
  getkResponse: bytes(`81 00 00 05  04 00 00 00  00 00 00 0e  00 00 00 00  00 00 00 00  00 00 00 01
    de ad be ef  'Hello'  'World'`),
  // 4.3.1
  addRequest: bytes(`80 02 00 05  08 00 00 00  00 00 00 12  00 00 00 00  00 00 00 00  00 00 00 00
    de ad be ef  00 00 1c 20  'Hello'  'World'`),
  addResponse: bytes(`81 02 00 00  00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 01`),
  // 4.4.1
  deleteRequest: bytes(
    `80 04 00 05  00 00 00 00  00 00 00 05  00 00 00 00  00 00 00 00  00 00 00 00  'Hello'`,
  ),
  // 4.5.1
  incrRequest: bytes(`80 05 00 07  14 00 00 00  00 00 00 1b  00 00 00 00  00 00 00 00  00 00 00 00
    00 00 00 00  00 00 00 01  00 00 00 00  00 00 00 00  00 00 1c 20  'counter'`),
  incrResponse: bytes(`81 05 00 00  00 00 00 00  00 00 00 08  00 00 00 00  00 00 00 00  00 00 00 05
    00 00 00 00  00 00 00 00`),
  // 4.6.1, 4.7.1, 4.8.1, 4.9.1
  quitRequest: bytes(`80 07 00 00  00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00`),
  flushRequest: bytes(`80 08 00 00  04 00 00 00  00 00 00 04  00 00 00 00  00 00 00 00  00 00 00 00
    00 00 1c 20`),
  noopRequest: bytes(`80 0a 00 00  00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00`),
  versionRequest: bytes(`80 0b 00 00  00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00`),
  versionResponse: bytes(`81 0b 00 00  00 00 00 00  00 00 00 05  00 00 00 00  00 00 00 00  00 00 00 00
    '1.3.1'`),
  // 4.10.1
  appendRequest: bytes(`80 0e 00 05  00 00 00 00  00 00 00 06  00 00 00 00  00 00 00 00  00 00 00 00
    'Hello!'`),
  // 4.11.1
  statRequest: bytes(`80 10 00 00  00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00`),
  statResponse: bytes(`81 10 00 03  00 00 00 00  00 00 00 07  00 00 00 00  00 00 00 00  00 00 00 00
    'pid3078'`),
};

const deadbeef = bytes('de ad be ef');
const TWO_HOURS = 0x1c20;

describe('binary protocol: the reference examples', () => {
  const requests = new BinaryRequestParser();
  const responses = new BinaryResponseParser();

  const requestCases: Array<[string, Buffer, BinaryRequest, Buffer[]]> = [
    [
      'get',
      SPEC.getRequest,
      request({ opcode: 0x00, key: b('Hello') }),
      encodeBinaryGet(BinaryOpcode.Get, b('Hello')),
    ],
    [
      'add',
      SPEC.addRequest,
      request({ opcode: 0x02, extras: bytes('de ad be ef 00 00 1c 20'), key: b('Hello'), value: b('World') }),
      encodeBinaryStore(BinaryOpcode.Add, b('Hello'), b('World'), 0xdeadbeef, TWO_HOURS),
    ],
    [
      'delete',
      SPEC.deleteRequest,
      request({ opcode: 0x04, key: b('Hello') }),
      encodeBinaryDelete(BinaryOpcode.Delete, b('Hello')),
    ],
    [
      'increment',
      SPEC.incrRequest,
      request({ opcode: 0x05, extras: SPEC.incrRequest.subarray(24, 44), key: b('counter') }),
      encodeBinaryArithmetic(BinaryOpcode.Increment, b('counter'), 1n, 0n, TWO_HOURS),
    ],
    ['quit', SPEC.quitRequest, request({ opcode: 0x07 }), encodeBinaryQuit()],
    [
      'flush',
      SPEC.flushRequest,
      request({ opcode: 0x08, extras: bytes('00 00 1c 20') }),
      encodeBinaryFlush(BinaryOpcode.Flush, TWO_HOURS),
    ],
    ['noop', SPEC.noopRequest, request({ opcode: 0x0a }), encodeBinaryNoop()],
    ['version', SPEC.versionRequest, request({ opcode: 0x0b }), encodeBinaryVersion()],
    [
      'append',
      SPEC.appendRequest,
      request({ opcode: 0x0e, key: b('Hello'), value: b('!') }),
      encodeBinaryConcat(BinaryOpcode.Append, b('Hello'), b('!')),
    ],
    ['stat', SPEC.statRequest, request({ opcode: 0x10 }), encodeBinaryStat()],
  ];

  for (const [name, input, expected, encoded] of requestCases) {
    it(`parses the ${name} request in every chunking and encodes it byte for byte`, () => {
      assertFrames(requests, input, [expected]);
      assert.deepEqual(Buffer.concat(encoded), input);
      assert.equal(binaryRequestProblem(expected), undefined);
    });
  }

  const responseCases: Array<[string, Buffer, BinaryResponse]> = [
    ['not found', SPEC.notFound, response({ opcode: 0x00, status: 1, value: b('Not found') })],
    ['get', SPEC.getResponse, response({ opcode: 0x00, cas: 1n, extras: deadbeef, value: b('World') })],
    [
      'getk',
      SPEC.getkResponse,
      response({ opcode: 0x00, cas: 1n, extras: deadbeef, key: b('Hello'), value: b('World') }),
    ],
    ['add', SPEC.addResponse, response({ opcode: 0x02, cas: 1n })],
    ['increment', SPEC.incrResponse, response({ opcode: 0x05, cas: 5n, value: Buffer.alloc(8) })],
    ['version', SPEC.versionResponse, response({ opcode: 0x0b, value: b('1.3.1') })],
    ['stat', SPEC.statResponse, response({ opcode: 0x10, key: b('pid'), value: b('3078') })],
  ];

  for (const [name, input, expected] of responseCases) {
    it(`parses the ${name} response in every chunking and encodes it byte for byte`, () => {
      assertFrames(responses, input, [expected]);
      assert.deepEqual(Buffer.concat(encodeBinaryResponse(expected)), input);
    });
  }

  it('reads the extras of the examples', () => {
    const [add] = decodeChunks(requests, [SPEC.addRequest]);
    const [incr] = decodeChunks(requests, [SPEC.incrRequest]);
    const [flush] = decodeChunks(requests, [SPEC.flushRequest]);
    const [get] = decodeChunks(responses, [SPEC.getResponse]);
    const [counter] = decodeChunks(responses, [SPEC.incrResponse]);
    assert.ok(add && incr && flush && get && counter);
    assert.equal(binaryStoreFlags(add), 0xdeadbeef);
    assert.equal(binaryStoreExpiration(add), 7200);
    assert.equal(binaryArithmeticDelta(incr), 1n);
    assert.equal(binaryArithmeticInitial(incr), 0n);
    assert.equal(binaryArithmeticExpiration(incr), 7200);
    assert.equal(binaryFlushExpiration(flush), 7200);
    assert.equal(binaryResponseFlags(get), 0xdeadbeef);
    assert.equal(binaryCounterValue(counter), 0n);
  });

  it('hands out views of the input, not copies', () => {
    const [frame] = decodeChunks(responses, [SPEC.getkResponse]);
    assert.ok(frame);
    assert.equal(frame.value.buffer, SPEC.getkResponse.buffer);
    assert.equal(frame.value.byteOffset, SPEC.getkResponse.byteOffset + 33);
    assert.equal(frame.key.byteOffset, SPEC.getkResponse.byteOffset + 28);
  });
});

/** A plausible body for any opcode, so every opcode round-trips with real content. */
function sampleRequest(opcode: number, random: () => number): BinaryRequestInit {
  const extrasLength = [0, 4, 8, 20][Math.floor(random() * 4)] ?? 0;
  const extras = Buffer.from(Array.from({ length: extrasLength }, () => Math.floor(random() * 256)));
  return {
    opcode,
    dataType: Math.floor(random() * 2),
    vbucket: Math.floor(random() * 0x10000),
    opaque: Math.floor(random() * 0x100000000),
    cas: random() < 0.5 ? 0n : BigInt(Math.floor(random() * 2 ** 53)) * 2048n,
    extras,
    key: b(`key:${opcode}`),
    value: random() < 0.3 ? EMPTY : Buffer.alloc(1 + Math.floor(random() * 300), opcode),
  };
}

describe('binary protocol: round trips', () => {
  const names = Object.keys(BinaryOpcode) as BinaryOpcodeName[];

  it('encodes and parses a request of every opcode to the same frame', () => {
    const random = rng(7);
    const frames = names.map((name) => request(sampleRequest(BinaryOpcode[name], random)));
    const input = join(...frames.map(encodeBinaryRequest));
    for (const { name, chunks } of chunkings(input, 30)) {
      if (name.startsWith('split at') && Number(name.slice(9)) % 97 !== 0) continue;
      assert.deepEqual(decodeChunks(new BinaryRequestParser(), chunks), frames, name);
    }
  });

  it('encodes and parses a response of every opcode and status to the same frame', () => {
    const random = rng(8);
    const statuses = Object.values(BinaryStatus);
    const frames = names.map((name, i) =>
      response({ ...sampleRequest(BinaryOpcode[name], random), status: statuses[i % statuses.length] ?? 0 }),
    );
    const input = join(...frames.map(encodeBinaryResponse));
    for (const { name, chunks } of chunkings(input, 30)) {
      if (name.startsWith('split at') && Number(name.slice(9)) % 89 !== 0) continue;
      assert.deepEqual(decodeChunks(new BinaryResponseParser(), chunks), frames, name);
    }
  });

  it('round-trips every convenience encoder and reads its extras back', () => {
    const parser = new BinaryRequestParser();
    const parse = (parts: Buffer[]): BinaryRequest => {
      const frames = decodeChunks(parser, parts);
      assert.equal(frames.length, 1);
      const frame = frames[0];
      assert.ok(frame);
      assert.equal(binaryRequestProblem(frame), undefined, binaryOpcodeName(frame.opcode));
      return frame;
    };
    const key = b('user:42');
    for (const opcode of [BinaryOpcode.Get, BinaryOpcode.GetQ, BinaryOpcode.GetK, BinaryOpcode.GetKQ]) {
      assert.deepEqual(parse(encodeBinaryGet(opcode, key, 9)), request({ opcode, key, opaque: 9 }));
    }
    const stores = [BinaryOpcode.Set, BinaryOpcode.SetQ, BinaryOpcode.Add, BinaryOpcode.AddQ];
    for (const opcode of [...stores, BinaryOpcode.Replace, BinaryOpcode.ReplaceQ]) {
      const frame = parse(encodeBinaryStore(opcode, key, b('v'), 0xffffffff, 86400, 2n ** 64n - 1n, 3));
      assert.deepEqual(
        [frame.opcode, frame.cas, frame.opaque, frame.value],
        [opcode, 2n ** 64n - 1n, 3, b('v')],
      );
      assert.deepEqual([binaryStoreFlags(frame), binaryStoreExpiration(frame)], [0xffffffff, 86400]);
    }
    for (const opcode of [
      BinaryOpcode.Append,
      BinaryOpcode.AppendQ,
      BinaryOpcode.Prepend,
      BinaryOpcode.PrependQ,
    ]) {
      assert.deepEqual(
        parse(encodeBinaryConcat(opcode, key, b('tail'), 5n, 6)),
        request({ opcode, key, value: b('tail'), cas: 5n, opaque: 6 }),
      );
    }
    for (const opcode of [BinaryOpcode.Delete, BinaryOpcode.DeleteQ]) {
      assert.deepEqual(
        parse(encodeBinaryDelete(opcode, key, 77n, 1)),
        request({ opcode, key, cas: 77n, opaque: 1 }),
      );
    }
    const counters = [
      BinaryOpcode.Increment,
      BinaryOpcode.IncrementQ,
      BinaryOpcode.Decrement,
      BinaryOpcode.DecrementQ,
    ];
    for (const opcode of counters) {
      const frame = parse(encodeBinaryArithmetic(opcode, key, 2n ** 63n, 10n, BINARY_NO_AUTO_CREATE, 0n, 2));
      assert.equal(binaryArithmeticDelta(frame), 2n ** 63n);
      assert.equal(binaryArithmeticInitial(frame), 10n);
      assert.equal(binaryArithmeticExpiration(frame), 0xffffffff);
    }
    const touches = [
      BinaryOpcode.Touch,
      BinaryOpcode.GAT,
      BinaryOpcode.GATQ,
      BinaryOpcode.GATK,
      BinaryOpcode.GATKQ,
    ];
    for (const opcode of touches) {
      assert.equal(binaryTouchExpiration(parse(encodeBinaryTouch(opcode, key, 300))), 300);
    }
    assert.equal(binaryFlushExpiration(parse(encodeBinaryFlush())), 0);
    assert.equal(binaryFlushExpiration(parse(encodeBinaryFlush(BinaryOpcode.FlushQ, 60))), 60);
    assert.equal(parse(encodeBinaryQuit(BinaryOpcode.QuitQ, 4)).opcode, BinaryOpcode.QuitQ);
    assert.deepEqual(
      parse(encodeBinaryStat(b('settings'), 8)),
      request({ opcode: 0x10, key: b('settings'), opaque: 8 }),
    );
    assert.equal(binaryVerbosityLevel(parse(encodeBinaryVerbosity(2))), 2);
  });

  it('keeps the value as the caller’s own buffer and copies only header, extras and key', () => {
    const value = Buffer.alloc(10_000, 1);
    const parts = encodeBinaryStore(BinaryOpcode.Set, b('k'), value, 0, 0);
    assert.equal(parts.length, 2);
    assert.equal(parts[1], value);
    assert.equal(parts[0]?.length, 24 + 8 + 1);
    assert.equal(encodeBinaryStore(BinaryOpcode.Set, b('k'), EMPTY, 0, 0).length, 1);
  });

  it('refuses numbers a header cannot carry', () => {
    assert.throws(() => encodeBinaryGet(BinaryOpcode.Get, Buffer.alloc(70_000)), RangeError);
    assert.throws(() => encodeBinaryRequest({ opcode: 256 }), RangeError);
    assert.throws(() => encodeBinaryRequest({ opcode: 0, extras: Buffer.alloc(256) }), RangeError);
    assert.throws(() => encodeBinaryTouch(BinaryOpcode.Touch, b('k'), -1), RangeError);
    assert.throws(() => encodeBinaryStore(BinaryOpcode.Set, b('k'), EMPTY, 0, 0, 2n ** 64n), RangeError);
  });
});

describe('binary protocol: pipelines of quiet opcodes', () => {
  it('reads getkq requests ending in noop', () => {
    const keys = Array.from({ length: 12 }, (_, i) => b(`k${i}`));
    const frames = [
      ...keys.map((key, i) => request({ opcode: BinaryOpcode.GetKQ, key, opaque: i })),
      request({ opcode: BinaryOpcode.Noop, opaque: 99 }),
    ];
    const input = join(
      ...keys.map((key, i) => encodeBinaryGet(BinaryOpcode.GetKQ, key, i)),
      encodeBinaryNoop(99),
    );
    assertFrames(new BinaryRequestParser(), input, frames);
  });

  it('reads quiet mutations ending in noop', () => {
    const input = join(
      encodeBinaryStore(BinaryOpcode.SetQ, b('a'), b('1'), 0, 0),
      encodeBinaryStore(BinaryOpcode.AddQ, b('b'), b('22'), 1, 2),
      encodeBinaryConcat(BinaryOpcode.AppendQ, b('a'), b('3')),
      encodeBinaryArithmetic(BinaryOpcode.IncrementQ, b('n'), 1n, 0n, 0),
      encodeBinaryDelete(BinaryOpcode.DeleteQ, b('b')),
      encodeBinaryTouch(BinaryOpcode.GATKQ, b('a'), 10),
      encodeBinaryFlush(BinaryOpcode.FlushQ),
      encodeBinaryNoop(),
    );
    const opcodes = [0x11, 0x12, 0x19, 0x15, 0x14, 0x24, 0x18, 0x0a];
    for (const { name, chunks } of chunkings(input, 20)) {
      const frames = decodeChunks(new BinaryRequestParser(), chunks);
      assert.deepEqual(
        frames.map((f) => f.opcode),
        opcodes,
        name,
      );
      assert.deepEqual(frames[1]?.value, b('22'), name);
    }
  });

  it('reads the hits of a getkq pipeline followed by the noop reply', () => {
    const hit = (key: string, value: string, opaque: number): BinaryResponse =>
      response({
        opcode: BinaryOpcode.GetKQ,
        opaque,
        cas: BigInt(opaque + 1),
        extras: deadbeef,
        key: b(key),
        value: b(value),
      });
    const frames = [
      hit('k1', 'one', 1),
      hit('k4', '', 4),
      hit('k7', 'seven', 7),
      response({ opcode: BinaryOpcode.Noop }),
    ];
    assertFrames(new BinaryResponseParser(), join(...frames.map(encodeBinaryResponse)), frames);
  });
});

describe('binary protocol: malformed input', () => {
  const cursor: ParseCursor = { end: 0, need: 0 };

  it('asks for the header, then for the whole packet', () => {
    const parser = new BinaryRequestParser();
    assert.equal(parser.parse(SPEC.addRequest.subarray(0, 1), 0, cursor), undefined);
    assert.equal(cursor.need, 24);
    assert.equal(parser.parse(SPEC.addRequest.subarray(0, 24), 0, cursor), undefined);
    assert.equal(cursor.need, 42);
    assert.equal(parser.parse(SPEC.addRequest.subarray(0, 41), 0, cursor), undefined);
    assert.equal(cursor.need, 42);
    const padded = Buffer.concat([b('xyz'), SPEC.addRequest, b('tail')]);
    assert.ok(parser.parse(padded, 3, cursor));
    assert.equal(cursor.end, 45);
  });

  it('refuses the wrong magic at the first byte, with its stream offset', () => {
    throwsProtocolError(
      () => new BinaryRequestParser().parse(SPEC.getResponse, 0, cursor),
      0,
      /response.*request was expected/,
    );
    throwsProtocolError(
      () => new BinaryResponseParser().parse(SPEC.getRequest, 0, cursor),
      0,
      /request.*response was expected/,
    );
    throwsProtocolError(
      () => decodeChunks(new BinaryRequestParser(), [b('get foo\r\n')]),
      0,
      /magic byte 0x67/,
    );
    const stream = Buffer.concat([SPEC.getRequest, SPEC.noopRequest, b('\x00')]);
    for (const { name, chunks } of chunkings(stream, 10)) {
      assert.throws(
        () => decodeChunks(new BinaryRequestParser(), chunks),
        (err: unknown) => err instanceof ProtocolError && err.offset === 53,
        name,
      );
    }
  });

  it('refuses extras and key longer than the body', () => {
    const bad = Buffer.from(SPEC.addRequest);
    bad.writeUInt32BE(12, 8);
    throwsProtocolError(
      () => decodeChunks(new BinaryRequestParser(), [SPEC.noopRequest, bad]),
      32,
      /cannot hold 8 bytes of extras and a 5-byte key/,
    );
  });

  it('refuses a key longer than the limit before its body arrives', () => {
    const head = encodeBinaryGet(BinaryOpcode.Get, Buffer.alloc(251, 0x61))[0];
    assert.ok(head);
    const decoder = new FrameDecoder(new BinaryRequestParser());
    decoder.push(head.subarray(0, 20), () => {});
    throwsProtocolError(
      () => decoder.push(head.subarray(20, 30), () => {}),
      2,
      /key of 251 bytes is longer than 250/,
    );
    assert.doesNotThrow(() =>
      decodeChunks(new BinaryRequestParser(), encodeBinaryGet(BinaryOpcode.Get, Buffer.alloc(250))),
    );
  });

  it('refuses a value larger than the limit from its header alone', () => {
    const limits = withLimits({ maxValueBytes: 100 });
    const ok = encodeBinaryResponse({ opcode: 0, extras: deadbeef, key: b('k'), value: Buffer.alloc(100) });
    assert.equal(decodeChunks(new BinaryResponseParser(limits), ok).length, 1);
    const big = encodeBinaryResponse({ opcode: 0, extras: deadbeef, key: b('k'), value: Buffer.alloc(101) });
    const decoder = new FrameDecoder(new BinaryResponseParser(limits));
    throwsProtocolError(
      () => decoder.push(big[0] ?? EMPTY, () => {}),
      8,
      /value of 101 bytes is larger than 100/,
    );
    // A header claiming 4 GiB is refused, never waited for.
    const huge = Buffer.from(SPEC.noopRequest);
    huge.writeUInt32BE(0xffffffff, 8);
    throwsProtocolError(() => decodeChunks(new BinaryRequestParser(), [huge]), 8, /larger than 1048576/);
  });

  it('frames unknown opcodes and odd shapes, and says what a server would object to', () => {
    const odd = request({ opcode: 0xee, extras: b('x'), key: b('k'), value: b('v') });
    assertFrames(new BinaryRequestParser(), join(encodeBinaryRequest(odd)), [odd]);
    assert.equal(binaryRequestProblem(odd), undefined);
    assert.equal(binaryOpcodeName(0xee), undefined);
    const getWithExtras = request({ opcode: BinaryOpcode.GetQ, extras: b('1234'), key: b('k') });
    assert.match(binaryRequestProblem(getWithExtras) ?? '', /4 bytes of extras where 0 are expected/);
    assert.match(
      binaryRequestProblem(request({ opcode: BinaryOpcode.Set, extras: Buffer.alloc(8) })) ?? '',
      /no key/,
    );
    assert.match(
      binaryRequestProblem(request({ opcode: BinaryOpcode.Noop, value: b('x') })) ?? '',
      /a value where none/,
    );
    assert.match(
      binaryRequestProblem(request({ opcode: BinaryOpcode.Flush, extras: Buffer.alloc(2) })) ?? '',
      /0 or 4/,
    );
    assert.equal(binaryStoreFlags(getWithExtras), undefined);
    assert.equal(binaryTouchExpiration(request({ opcode: BinaryOpcode.Touch, key: b('k') })), undefined);
    assert.equal(
      binaryArithmeticDelta(request({ opcode: BinaryOpcode.Increment, extras: Buffer.alloc(8) })),
      undefined,
    );
    assert.equal(
      binaryFlushExpiration(request({ opcode: BinaryOpcode.Flush, extras: Buffer.alloc(8) })),
      undefined,
    );
    assert.equal(binaryCounterValue(response({ opcode: 5, status: 6, value: b('Non-numer') })), undefined);
  });
});

describe('binary protocol: opcode and status tables', () => {
  it('pairs every quiet opcode with its loud twin', () => {
    const names = Object.keys(BinaryOpcode) as BinaryOpcodeName[];
    const quiet = names.filter((name) => isQuiet(BinaryOpcode[name]));
    assert.deepEqual(quiet.sort(), [
      'AddQ',
      'AppendQ',
      'DecrementQ',
      'DeleteQ',
      'FlushQ',
      'GATKQ',
      'GATQ',
      'GetKQ',
      'GetQ',
      'IncrementQ',
      'PrependQ',
      'QuitQ',
      'RAppendQ',
      'RDecrQ',
      'RDeleteQ',
      'RIncrQ',
      'RPrependQ',
      'RSetQ',
      'ReplaceQ',
      'SetQ',
    ]);
    for (const name of quiet) {
      const loud = loudOf(BinaryOpcode[name]);
      assert.notEqual(loud, BinaryOpcode[name], name);
      assert.equal(quietOf(loud), BinaryOpcode[name], name);
      assert.equal(`${binaryOpcodeName(loud)}Q`, name);
    }
    assert.equal(quietOf(BinaryOpcode.Noop), undefined);
    assert.equal(quietOf(BinaryOpcode.GetQ), undefined);
    assert.equal(loudOf(BinaryOpcode.Stat), BinaryOpcode.Stat);
    assert.equal(isQuiet(-1), false);
    assert.equal(isQuiet(1.5), false);
    assert.equal(isQuiet(0x109), false);
  });

  it('names every opcode once and every status in words', () => {
    const values = Object.values(BinaryOpcode);
    assert.equal(new Set(values).size, values.length);
    for (const [name, value] of Object.entries(BinaryOpcode)) assert.equal(binaryOpcodeName(value), name);
    assert.equal(binaryStatusText(BinaryStatus.KeyNotFound), 'Key not found');
    assert.equal(binaryStatusText(0x0006), 'Incr/Decr on non-numeric value');
    assert.equal(binaryStatusText(0x0081), 'Unknown command');
    assert.equal(binaryStatusText(0x0099), 'status 0x0099');
  });
});

/** One binary connection to a real memcached, reading replies with BinaryResponseParser. */
class Connection {
  private readonly socket: Socket;
  private readonly decoder = new FrameDecoder(new BinaryResponseParser());
  private received: BinaryResponse[] = [];
  private failure: unknown;
  private wake: (() => void) | undefined;
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      try {
        this.decoder.push(chunk, (frame) => this.received.push(frame));
      } catch (err) {
        this.failure = err;
      }
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', (err) => {
      this.failure = err;
    });
  }

  static open(server: MemcachedServer): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: server.host, port: server.port });
      socket.once('connect', () => resolve(new Connection(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends the packets, then collects replies up to the first that `last` accepts. */
  async exchange(packets: Buffer[][], last: (res: BinaryResponse) => boolean): Promise<BinaryResponse[]> {
    this.socket.cork();
    for (const packet of packets) for (const part of packet) this.socket.write(part);
    this.socket.uncork();
    const deadline = setTimeout(() => {
      this.failure ??= new Error('memcached did not answer within 10 s');
      this.wake?.();
    }, 10_000);
    try {
      for (;;) {
        if (this.failure !== undefined) throw this.failure;
        const at = this.received.findIndex(last);
        if (at >= 0) return this.received.splice(0, at + 1);
        if (this.closed) return this.received.splice(0);
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      clearTimeout(deadline);
      this.wake = undefined;
    }
  }

  /** Sends one loud request and returns its single reply. */
  async call(packet: Buffer[]): Promise<BinaryResponse> {
    const replies = await this.exchange([packet], () => true);
    assert.equal(replies.length, 1);
    const reply = replies[0];
    assert.ok(reply);
    return reply;
  }

  close(): void {
    this.socket.destroy();
  }
}

const isNoop = (res: BinaryResponse): boolean => res.opcode === BinaryOpcode.Noop;

describe('binary protocol: against a real memcached', () => {
  let server: MemcachedServer;
  let conn: Connection;

  before(async () => {
    server = await startMemcached({ args: ['-I', '2m'] });
    conn = await Connection.open(server);
  });

  after(async () => {
    conn?.close();
    await server?.stop();
  });

  it('stores and gets with get, getk, getq and getkq', async () => {
    const set = await conn.call(
      encodeBinaryStore(BinaryOpcode.Set, b('greeting'), b('hello'), 0xcafe, 0, 0n, 11),
    );
    assert.deepEqual([set.opcode, set.status, set.opaque, set.value.length], [BinaryOpcode.Set, 0, 11, 0]);
    assert.ok(set.cas > 0n);

    const get = await conn.call(encodeBinaryGet(BinaryOpcode.Get, b('greeting'), 12));
    assert.deepEqual(
      [get.status, get.opaque, get.key, get.value, get.cas],
      [0, 12, EMPTY, b('hello'), set.cas],
    );
    assert.equal(binaryResponseFlags(get), 0xcafe);

    const getk = await conn.call(encodeBinaryGet(BinaryOpcode.GetK, b('greeting')));
    assert.deepEqual([getk.key, getk.value], [b('greeting'), b('hello')]);

    const miss = await conn.call(encodeBinaryGet(BinaryOpcode.Get, b('absent'), 13));
    assert.deepEqual([miss.status, miss.opaque, miss.value], [BinaryStatus.KeyNotFound, 13, b('Not found')]);
    const missk = await conn.call(encodeBinaryGet(BinaryOpcode.GetK, b('absent')));
    assert.deepEqual([missk.status, missk.key], [BinaryStatus.KeyNotFound, b('absent')]);

    const quiet = await conn.exchange(
      [
        encodeBinaryGet(BinaryOpcode.GetQ, b('absent'), 1),
        encodeBinaryGet(BinaryOpcode.GetQ, b('greeting'), 2),
        encodeBinaryGet(BinaryOpcode.GetKQ, b('absent'), 3),
        encodeBinaryGet(BinaryOpcode.GetKQ, b('greeting'), 4),
        encodeBinaryNoop(5),
      ],
      isNoop,
    );
    assert.deepEqual(
      quiet.map((r) => [r.opcode, r.status, r.opaque, r.key.toString(), r.value.toString()]),
      [
        [BinaryOpcode.GetQ, 0, 2, '', 'hello'],
        [BinaryOpcode.GetKQ, 0, 4, 'greeting', 'hello'],
        [BinaryOpcode.Noop, 0, 5, '', ''],
      ],
    );
  });

  it('answers add, replace and cas with the statuses memcached uses', async () => {
    const add = await conn.call(encodeBinaryStore(BinaryOpcode.Add, b('slot'), b('1'), 0, 0));
    assert.equal(add.status, BinaryStatus.NoError);
    // memcached reports a refused add as KeyExists and a refused replace as KeyNotFound.
    const addAgain = await conn.call(encodeBinaryStore(BinaryOpcode.Add, b('slot'), b('2'), 0, 0));
    assert.deepEqual(
      [addAgain.status, addAgain.value.toString()],
      [BinaryStatus.KeyExists, 'Data exists for key.'],
    );
    const replaceMissing = await conn.call(
      encodeBinaryStore(BinaryOpcode.Replace, b('nothing'), b('x'), 0, 0),
    );
    assert.equal(replaceMissing.status, BinaryStatus.KeyNotFound);
    const replace = await conn.call(encodeBinaryStore(BinaryOpcode.Replace, b('slot'), b('3'), 0, 0));
    assert.equal(replace.status, BinaryStatus.NoError);

    const stale = await conn.call(
      encodeBinaryStore(BinaryOpcode.Set, b('slot'), b('4'), 0, 0, replace.cas + 1000n),
    );
    assert.equal(stale.status, BinaryStatus.KeyExists);
    const fresh = await conn.call(encodeBinaryStore(BinaryOpcode.Set, b('slot'), b('5'), 0, 0, replace.cas));
    assert.equal(fresh.status, BinaryStatus.NoError);
    assert.notEqual(fresh.cas, replace.cas);
    assert.deepEqual((await conn.call(encodeBinaryGet(BinaryOpcode.Get, b('slot')))).value, b('5'));
  });

  it('appends, prepends and deletes', async () => {
    await conn.call(encodeBinaryStore(BinaryOpcode.Set, b('word'), b('mid'), 0, 0));
    assert.equal((await conn.call(encodeBinaryConcat(BinaryOpcode.Append, b('word'), b('>')))).status, 0);
    assert.equal((await conn.call(encodeBinaryConcat(BinaryOpcode.Prepend, b('word'), b('<')))).status, 0);
    assert.deepEqual((await conn.call(encodeBinaryGet(BinaryOpcode.Get, b('word')))).value, b('<mid>'));
    const appendMissing = await conn.call(encodeBinaryConcat(BinaryOpcode.Append, b('nowhere'), b('x')));
    assert.equal(appendMissing.status, BinaryStatus.ItemNotStored);
    assert.equal((await conn.call(encodeBinaryDelete(BinaryOpcode.Delete, b('word')))).status, 0);
    assert.equal(
      (await conn.call(encodeBinaryDelete(BinaryOpcode.Delete, b('word')))).status,
      BinaryStatus.KeyNotFound,
    );
  });

  it('counts with incr and decr, and reports non-numeric values', async () => {
    const created = await conn.call(encodeBinaryArithmetic(BinaryOpcode.Increment, b('hits'), 5n, 40n, 0));
    assert.deepEqual([created.status, binaryCounterValue(created)], [0, 40n]);
    const up = await conn.call(encodeBinaryArithmetic(BinaryOpcode.Increment, b('hits'), 5n, 0n, 0));
    assert.equal(binaryCounterValue(up), 45n);
    const down = await conn.call(encodeBinaryArithmetic(BinaryOpcode.Decrement, b('hits'), 50n, 0n, 0));
    assert.equal(binaryCounterValue(down), 0n);
    const noCreate = await conn.call(
      encodeBinaryArithmetic(BinaryOpcode.Increment, b('nocount'), 1n, 0n, BINARY_NO_AUTO_CREATE),
    );
    assert.equal(noCreate.status, BinaryStatus.KeyNotFound);
    await conn.call(encodeBinaryStore(BinaryOpcode.Set, b('text'), b('abc'), 0, 0));
    const nonNumeric = await conn.call(encodeBinaryArithmetic(BinaryOpcode.Increment, b('text'), 1n, 0n, 0));
    assert.equal(nonNumeric.status, BinaryStatus.NonNumeric);
    assert.equal(binaryCounterValue(nonNumeric), undefined);
    assert.match(nonNumeric.value.toString(), /non-numeric/i);
  });

  it('touches and gets-and-touches', async () => {
    await conn.call(encodeBinaryStore(BinaryOpcode.Set, b('session'), b('data'), 7, 0));
    const touch = await conn.call(encodeBinaryTouch(BinaryOpcode.Touch, b('session'), 3600));
    assert.deepEqual([touch.status, touch.value.length, binaryResponseFlags(touch)], [0, 0, 7]);
    const gat = await conn.call(encodeBinaryTouch(BinaryOpcode.GAT, b('session'), 3600));
    assert.deepEqual([gat.status, gat.value, binaryResponseFlags(gat)], [0, b('data'), 7]);
    const gatk = await conn.call(encodeBinaryTouch(BinaryOpcode.GATK, b('session'), 3600));
    assert.deepEqual([gatk.key, gatk.value], [b('session'), b('data')]);
    const missing = await conn.call(encodeBinaryTouch(BinaryOpcode.Touch, b('gone'), 10));
    assert.equal(missing.status, BinaryStatus.KeyNotFound);
  });

  it('answers noop, version and a multi-packet stat ending with an empty packet', async () => {
    const noop = await conn.call(encodeBinaryNoop(77));
    assert.deepEqual(noop, response({ opcode: BinaryOpcode.Noop, opaque: 77 }));
    const version = await conn.call(encodeBinaryVersion());
    assert.match(version.value.toString(), /^\d+\.\d+\.\d+/);

    const stats = await conn.exchange([encodeBinaryStat(EMPTY, 3)], (r) => r.key.length === 0);
    assert.ok(stats.length > 20, `only ${stats.length} stat packets`);
    assert.ok(stats.every((r) => r.opcode === BinaryOpcode.Stat && r.status === 0 && r.opaque === 3));
    const last = stats[stats.length - 1];
    assert.deepEqual([last?.key.length, last?.value.length], [0, 0]);
    const named = new Map(stats.map((r) => [r.key.toString(), r.value.toString()]));
    assert.equal(named.get('pid'), String(server.process.pid));
    assert.equal(named.get('version'), version.value.toString());

    const settings = await conn.exchange([encodeBinaryStat(b('settings'))], (r) => r.key.length === 0);
    assert.equal(
      new Map(settings.map((r) => [r.key.toString(), r.value.toString()])).get('item_size_max'),
      '2097152',
    );
  });

  it('stays silent on quiet successes and reports quiet failures before the noop', async () => {
    const keys = Array.from({ length: 50 }, (_, i) => b(`quiet:${i}`));
    const replies = await conn.exchange(
      [
        ...keys.map((key, i) => encodeBinaryStore(BinaryOpcode.SetQ, key, b(`v${i}`), i, 0, 0n, i)),
        encodeBinaryStore(BinaryOpcode.AddQ, b('quiet:3'), b('again'), 0, 0, 0n, 1000),
        encodeBinaryDelete(BinaryOpcode.DeleteQ, b('quiet:4'), 0n, 1001),
        encodeBinaryDelete(BinaryOpcode.DeleteQ, b('quiet:none'), 0n, 1002),
        encodeBinaryNoop(2000),
      ],
      isNoop,
    );
    assert.deepEqual(
      replies.map((r) => [r.opcode, r.status, r.opaque]),
      [
        [BinaryOpcode.AddQ, BinaryStatus.KeyExists, 1000],
        [BinaryOpcode.DeleteQ, BinaryStatus.KeyNotFound, 1002],
        [BinaryOpcode.Noop, 0, 2000],
      ],
    );
    const hits = await conn.exchange(
      [...keys.map((key, i) => encodeBinaryGet(BinaryOpcode.GetKQ, key, i)), encodeBinaryNoop()],
      isNoop,
    );
    // quiet:4 was deleted, so 49 hits (in request order) and the noop.
    assert.equal(hits.length, 50);
    assert.deepEqual(
      hits.slice(3, 6).map((r) => [r.key.toString(), r.value.toString(), binaryResponseFlags(r), r.opaque]),
      [
        ['quiet:3', 'v3', 3, 3],
        ['quiet:5', 'v5', 5, 5],
        ['quiet:6', 'v6', 6, 6],
      ],
    );
  });

  it('carries a 1 MiB value both ways', async () => {
    const value = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < value.length; i++) value[i] = (i * 31 + (i >>> 10)) & 0xff;
    const set = await conn.call(encodeBinaryStore(BinaryOpcode.Set, b('big'), value, 1, 0));
    assert.equal(set.status, 0);
    const get = await conn.call(encodeBinaryGet(BinaryOpcode.Get, b('big')));
    assert.equal(get.value.length, value.length);
    assert.ok(get.value.equals(value));
  });

  it('answers unknown opcodes and flushes', async () => {
    const replies = await conn.exchange(
      [encodeBinaryRequest({ opcode: BinaryOpcode.RGet }), encodeBinaryNoop()],
      isNoop,
    );
    assert.deepEqual(
      replies.map((r) => [r.opcode, r.status, r.value.toString()]),
      [
        [BinaryOpcode.RGet, BinaryStatus.UnknownCommand, 'Unknown command'],
        [BinaryOpcode.Noop, 0, ''],
      ],
    );
    assert.equal((await conn.call(encodeBinaryFlush())).status, 0);
    assert.equal(
      (await conn.call(encodeBinaryGet(BinaryOpcode.Get, b('greeting')))).status,
      BinaryStatus.KeyNotFound,
    );
  });

  it('rejects a request of the wrong shape as binaryRequestProblem predicts, then closes', async () => {
    const bad = request({ opcode: BinaryOpcode.Get, extras: b('1234'), key: b('k') });
    assert.ok(binaryRequestProblem(bad));
    const other = await Connection.open(server);
    try {
      const replies = await other.exchange([encodeBinaryRequest(bad)], () => true);
      assert.deepEqual(
        replies.map((r) => r.status),
        [BinaryStatus.InvalidArguments],
      );
    } finally {
      other.close();
    }
  });

  it('answers quit and closes the connection', async () => {
    const other = await Connection.open(server);
    const replies = await other.exchange([encodeBinaryQuit()], () => false);
    assert.deepEqual(
      replies.map((r) => [r.opcode, r.status]),
      [[BinaryOpcode.Quit, 0]],
    );
    assert.ok(other.closed);
  });
});
