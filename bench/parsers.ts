/**
 * Parser throughput, single core: each case is a pipelined byte stream pushed
 * through a FrameDecoder in 64 KiB chunks (the size of a socket read), the way
 * the client, the proxy and the capture path feed it. Prints one JSON object
 * with the median of several ~1 s runs per case, in frames/s and MB/s.
 *
 * Cases are data, so other protocols (binary) add entries to `cases` and share
 * the loop.
 */
import { AsciiRequestParser, AsciiResponseParser } from '../src/protocol/ascii.js';
import {
  BinaryOpcode,
  BinaryRequestParser,
  BinaryResponseParser,
  encodeBinaryGet,
  encodeBinaryNoop,
  encodeBinaryResponse,
  encodeBinaryStore,
} from '../src/protocol/binary.js';
import { FrameDecoder, type FrameParser } from '../src/protocol/decoder.js';
import { withLimits } from '../src/protocol/limits.js';

interface Case {
  readonly protocol: string;
  readonly name: string;
  /** A pipelined stream of `frames` frames. */
  readonly input: Buffer;
  readonly frames: number;
  /** Commands (or replies) in the stream: a VALUE reply is two frames, VALUE and END. */
  readonly commands?: number;
  readonly parser: FrameParser<unknown>;
}

const CHUNK = 64 * 1024;
const RUNS = 5;
const RUN_MS = 1000;

function repeat(unit: string | Buffer, times: number): Buffer {
  const one = typeof unit === 'string' ? Buffer.from(unit, 'latin1') : unit;
  return Buffer.concat(Array.from({ length: times }, () => one));
}

function key(i: number): string {
  return 'user:session:' + String(i).padStart(8, '0');
}

function lines(count: number, make: (i: number) => string | Buffer): Buffer {
  return Buffer.concat(
    Array.from({ length: count }, (_, i) => {
      const line = make(i);
      return typeof line === 'string' ? Buffer.from(line, 'latin1') : line;
    }),
  );
}

const value100 = Buffer.alloc(100, 0x61);
const value10k = Buffer.alloc(10 * 1024, 0x62);
const keys100 = Array.from({ length: 100 }, (_, i) => key(i)).join(' ');
const limits = withLimits({ maxValueBytes: 1024 * 1024 });

function storage(count: number, value: Buffer): Buffer {
  return lines(count, (i) =>
    Buffer.concat([Buffer.from(`set ${key(i)} 0 0 ${value.length}\r\n`), value, Buffer.from('\r\n')]),
  );
}

function metaSet(count: number, value: Buffer): Buffer {
  return lines(count, (i) =>
    Buffer.concat([Buffer.from(`ms ${key(i)} ${value.length} T0 F0\r\n`), value, Buffer.from('\r\n')]),
  );
}

function valueReplies(count: number, value: Buffer): Buffer {
  return lines(count, (i) =>
    Buffer.concat([Buffer.from(`VALUE ${key(i)} 0 ${value.length}\r\n`), value, Buffer.from('\r\nEND\r\n')]),
  );
}

/** A CAS value of the size a busy server hands out. */
function cas(i: number): number {
  return 48_000_000 + i * 7;
}

function metaReplies(count: number, value: Buffer): Buffer {
  return lines(count, () =>
    Buffer.concat([Buffer.from(`VA ${value.length} f0 t-1\r\n`), value, Buffer.from('\r\n')]),
  );
}

const req = new AsciiRequestParser(limits);
const res = new AsciiResponseParser(limits);

export const cases: Case[] = [
  {
    protocol: 'text',
    name: 'get <key>',
    input: lines(10_000, (i) => `get ${key(i)}\r\n`),
    frames: 10_000,
    parser: req,
  },
  { protocol: 'text', name: 'set 100 B', input: storage(5_000, value100), frames: 5_000, parser: req },
  { protocol: 'text', name: 'set 10 KiB', input: storage(500, value10k), frames: 500, parser: req },
  {
    protocol: 'text',
    name: 'get 100 keys',
    input: repeat(`get ${keys100}\r\n`, 200),
    frames: 200,
    parser: req,
  },
  {
    protocol: 'meta',
    name: 'mg <key> v',
    input: lines(10_000, (i) => `mg ${key(i)} v\r\n`),
    frames: 10_000,
    parser: req,
  },
  { protocol: 'meta', name: 'ms 100 B', input: metaSet(5_000, value100), frames: 5_000, parser: req },
  { protocol: 'meta', name: 'ms 10 KiB', input: metaSet(500, value10k), frames: 500, parser: req },
  {
    protocol: 'meta',
    name: '100 pipelined mg + mn',
    input: repeat(
      Buffer.concat([lines(100, (i) => `mg ${key(i)} v f t q O${i}\r\n`), Buffer.from('mn\r\n')]),
      100,
    ),
    frames: 10_100,
    commands: 10_100,
    parser: req,
  },
  {
    protocol: 'text',
    name: 'VALUE 100 B + END',
    input: valueReplies(5_000, value100),
    frames: 10_000,
    commands: 5_000,
    parser: res,
  },
  {
    protocol: 'text',
    name: 'VALUE 10 KiB + END',
    input: valueReplies(500, value10k),
    frames: 1_000,
    commands: 500,
    parser: res,
  },
  { protocol: 'meta', name: 'VA 100 B', input: metaReplies(5_000, value100), frames: 5_000, parser: res },
  { protocol: 'meta', name: 'VA 10 KiB', input: metaReplies(500, value10k), frames: 500, parser: res },
  // The replies of a copy batch, as memcached writes them: the read, the write, the second look.
  {
    protocol: 'meta',
    name: 'copy: VA 100 B f t c O',
    input: lines(5_000, (i) =>
      Buffer.concat([
        Buffer.from(`VA 100 f0 t-1 c${cas(i)} O${i % 1000}\r\n`),
        value100,
        Buffer.from('\r\n'),
      ]),
    ),
    frames: 5_000,
    parser: res,
  },
  {
    protocol: 'meta',
    name: 'copy: HD c',
    input: lines(10_000, (i) => `HD c${cas(i)}\r\n`),
    frames: 10_000,
    parser: res,
  },
  {
    protocol: 'meta',
    name: 'copy: HD t c O',
    input: lines(10_000, (i) => `HD t-1 c${cas(i)} O${i % 1000}\r\n`),
    frames: 10_000,
    parser: res,
  },
];

// Binary protocol: the same workloads as packets (reference/memcached-protocol-binary.txt).
const binReq = new BinaryRequestParser(limits);
const binRes = new BinaryResponseParser(limits);
const packets = (count: number, make: (i: number) => Buffer[]): Buffer =>
  Buffer.concat(Array.from({ length: count }, (_, i) => make(i)).flat());
const flags = Buffer.from([0, 0, 0, 0]);
const binaryHit = (i: number, value: Buffer): Buffer[] =>
  encodeBinaryResponse({
    opcode: BinaryOpcode.GetKQ,
    opaque: i,
    cas: BigInt(i + 1),
    extras: flags,
    key: Buffer.from(key(i)),
    value,
  });

cases.push(
  {
    protocol: 'binary',
    name: 'get <key>',
    input: packets(10_000, (i) => encodeBinaryGet(BinaryOpcode.Get, Buffer.from(key(i)), i)),
    frames: 10_000,
    parser: binReq,
  },
  {
    protocol: 'binary',
    name: 'set 100 B',
    input: packets(5_000, (i) => encodeBinaryStore(BinaryOpcode.Set, Buffer.from(key(i)), value100, 0, 0)),
    frames: 5_000,
    parser: binReq,
  },
  {
    protocol: 'binary',
    name: 'set 10 KiB',
    input: packets(500, (i) => encodeBinaryStore(BinaryOpcode.Set, Buffer.from(key(i)), value10k, 0, 0)),
    frames: 500,
    parser: binReq,
  },
  {
    protocol: 'binary',
    name: '100 pipelined getkq + noop',
    input: packets(100, () => [
      packets(100, (i) => encodeBinaryGet(BinaryOpcode.GetKQ, Buffer.from(key(i)), i)),
      ...encodeBinaryNoop(),
    ]),
    frames: 10_100,
    commands: 10_100,
    parser: binReq,
  },
  {
    protocol: 'binary',
    name: 'getkq hit 100 B',
    input: packets(5_000, (i) => binaryHit(i, value100)),
    frames: 5_000,
    parser: binRes,
  },
  {
    protocol: 'binary',
    name: 'getkq hit 10 KiB',
    input: packets(500, (i) => binaryHit(i, value10k)),
    frames: 500,
    parser: binRes,
  },
);

function chunksOf(input: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < input.length; at += CHUNK) chunks.push(input.subarray(at, at + CHUNK));
  return chunks;
}

/** One timed run: passes over the input until RUN_MS has elapsed; returns [frames/s, bytes/s]. */
function run(c: Case, chunks: Buffer[]): [number, number] {
  let frames = 0;
  let passes = 0;
  const count = (): void => {
    frames++;
  };
  const began = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < RUN_MS) {
    const decoder = new FrameDecoder(c.parser);
    for (const chunk of chunks) decoder.push(chunk, count);
    passes++;
    elapsed = Number(process.hrtime.bigint() - began) / 1e6;
  }
  if (frames !== passes * c.frames)
    throw new Error(`${c.name}: ${frames} frames, expected ${passes * c.frames}`);
  return [(frames / elapsed) * 1000, ((passes * c.input.length) / elapsed) * 1000];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export function runCases(list: readonly Case[]): Record<string, unknown>[] {
  const results: Record<string, unknown>[] = [];
  for (const c of list) {
    const chunks = chunksOf(c.input);
    run(c, chunks); // warm-up
    const perSecond: number[] = [];
    const bytesPerSecond: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const [f, b] = run(c, chunks);
      perSecond.push(f);
      bytesPerSecond.push(b);
    }
    results.push({
      protocol: c.protocol,
      name: c.name,
      commandsPerSecond: Math.round((median(perSecond) * (c.commands ?? c.frames)) / c.frames),
      framesPerSecond: Math.round(median(perSecond)),
      megabytesPerSecond: Math.round(median(bytesPerSecond) / 1e4) / 100,
      runs: RUNS,
    });
  }
  return results;
}

/** `node dist/bench/parsers.js [match]`: only the cases whose protocol and name contain `match`. */
const only = process.argv[2];

console.log(
  JSON.stringify(
    {
      node: process.version,
      chunkBytes: CHUNK,
      runSeconds: RUN_MS / 1000,
      statistic: 'median',
      cases: runCases(
        only === undefined ? cases : cases.filter((c) => `${c.protocol} ${c.name}`.includes(only)),
      ),
    },
    null,
    2,
  ),
);
