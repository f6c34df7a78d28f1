/**
 * ops/ has two inputs: capture's extractor, which pairs a connection's bytes
 * itself, and PairedOperations, which the proxy feeds with requests it
 * already paired with their replies. The same exchanges through both give the
 * same operations, and the operations the replay needs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Flow } from '../src/capture/tcp-reassembly.js';
import type { AsciiRequest, AsciiResponse, RetrievalRequest } from '../src/protocol/ascii-frames.js';
import { AsciiRequestParser, AsciiResponseParser } from '../src/protocol/ascii.js';
import {
  BinaryOpcode,
  BinaryRequestParser,
  BinaryResponseParser,
  BinaryStatus,
  encodeBinaryArithmetic,
  encodeBinaryDelete,
  encodeBinaryGet,
  encodeBinaryResponse,
  encodeBinaryStore,
  type BinaryRequest,
  type BinaryResponse,
} from '../src/protocol/binary.js';
import { FrameDecoder } from '../src/protocol/decoder.js';
import { OperationExtractor } from '../src/ops/extractor.js';
import type { Operation } from '../src/ops/operation.js';
import { PairedOperations } from '../src/ops/paired.js';

type Exchange = readonly [request: string | Buffer, reply: string | Buffer];

function show(op: Operation): string {
  const parts = [op.protocol, op.command, op.key.toString('latin1'), op.outcome];
  if (op.value !== undefined) parts.push(`value=${op.value.toString('latin1')}`);
  if (op.flags !== undefined) parts.push(`flags=${op.flags}`);
  if (op.exptime !== undefined) parts.push(`exp=${op.exptime}`);
  if (op.delta !== undefined) parts.push(`delta=${op.delta}`);
  if (op.initial !== undefined) parts.push(`initial=${op.initial}`);
  if (op.number !== undefined) parts.push(`number=${op.number}`);
  return parts.join(' ');
}

const bytes = (b: string | Buffer): Buffer => (typeof b === 'string' ? Buffer.from(b, 'latin1') : b);
const cat = (parts: Buffer[]): Buffer => Buffer.concat(parts);
const k = (s: string): Buffer => Buffer.from(s, 'latin1');

function frames<F>(decoder: FrameDecoder<F>, b: Buffer): F[] {
  const out: F[] = [];
  decoder.push(b, (f) => out.push(f));
  return out;
}

/** Through capture's extractor: the conversation's bytes, both directions. */
function captured(exchanges: readonly Exchange[]): string[] {
  const ops: Operation[] = [];
  const extractor = new OperationExtractor((op) => ops.push(op));
  const flow: Flow = {
    id: 1,
    client: { family: 4, address: '127.0.0.1', port: 40000 },
    server: { family: 4, address: '127.0.0.1', port: 11211 },
    midstream: false,
    openedMicros: 0,
  };
  extractor.open(flow);
  let t = 1000;
  for (const [req, res] of exchanges) {
    extractor.data(flow, 'request', bytes(req), t++);
    extractor.data(flow, 'response', bytes(res), t++);
  }
  extractor.close(flow, 'fin');
  return ops.map(show);
}

/** Through PairedOperations: each request parsed, handed over with its parsed reply. */
function pairedText(exchanges: readonly Exchange[]): string[] {
  const ops: Operation[] = [];
  const paired = new PairedOperations((op) => ops.push(op));
  const requests = new FrameDecoder(new AsciiRequestParser());
  const replies = new FrameDecoder(new AsciiResponseParser());
  for (const [req, res] of exchanges) {
    const [request] = frames<AsciiRequest>(requests, bytes(req));
    const reply = frames<AsciiResponse>(replies, bytes(res));
    assert.ok(request);
    if (request.kind === 'retrieval') paired.textRead(request as RetrievalRequest, reply, 7, 1000);
    else paired.text(request, reply[0]!, 7, 1000);
  }
  for (const op of ops) assert.equal(op.connection, 7);
  return ops.map(show);
}

function pairedBinary(exchanges: readonly Exchange[]): string[] {
  const ops: Operation[] = [];
  const paired = new PairedOperations((op) => ops.push(op));
  const requests = new FrameDecoder(new BinaryRequestParser());
  const replies = new FrameDecoder(new BinaryResponseParser());
  for (const [req, res] of exchanges) {
    const [request] = frames<BinaryRequest>(requests, bytes(req));
    const [reply] = frames<BinaryResponse>(replies, bytes(res));
    paired.binary(request!, reply!, 7, 1000);
  }
  return ops.map(show);
}

const TEXT: readonly Exchange[] = [
  ['set a 5 0 3\r\nabc\r\n', 'STORED\r\n'],
  ['add a 0 0 1\r\nx\r\n', 'NOT_STORED\r\n'],
  ['get a b c\r\n', 'VALUE a 5 3\r\nabc\r\nVALUE c 0 1\r\nz\r\nEND\r\n'],
  ['gat 30 a\r\n', 'SERVER_ERROR out of memory\r\n'],
  ['incr n 2\r\n', '7\r\n'],
  ['touch a 10\r\n', 'TOUCHED\r\n'],
  ['delete a\r\n', 'DELETED\r\n'],
  ['cas a 0 0 1 99\r\nq\r\n', 'EXISTS\r\n'],
  ['ms m 2 T30 F3\r\nhi\r\n', 'HD\r\n'],
  ['mg m v f\r\n', 'VA 2 f3\r\nhi\r\n'],
  ['ma c D5 v\r\n', 'VA 2\r\n12\r\n'],
  ['md m\r\n', 'NF\r\n'],
  ['version\r\n', 'VERSION 1.6.18\r\n'],
  ['flush_all\r\n', 'OK\r\n'],
];

const TEXT_OPS = [
  'text set a stored value=abc flags=5 exp=0',
  'text add a not_stored value=x flags=0 exp=0',
  'text get a hit value=abc flags=5',
  'text get b miss',
  'text get c hit value=z flags=0',
  'text gat a error exp=30',
  'text incr n number delta=2 number=7',
  'text touch a touched exp=10',
  'text delete a deleted',
  'text cas a exists value=q flags=0 exp=0',
  'meta set m stored value=hi flags=3 exp=30',
  'meta get m hit value=hi flags=3',
  'meta incr c number delta=5 number=12',
  'meta delete m not_found',
  'text flush_all  ok',
];

const res = (
  opcode: number,
  status = 0,
  extra: Partial<Parameters<typeof encodeBinaryResponse>[0]> = {},
): Buffer => cat(encodeBinaryResponse({ opcode, status, ...extra }));
const counter = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};
const flags = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

const BINARY: readonly Exchange[] = [
  [cat(encodeBinaryStore(BinaryOpcode.Set, k('k1'), k('abc'), 9, 60)), res(BinaryOpcode.Set)],
  [
    cat(encodeBinaryStore(BinaryOpcode.Add, k('k1'), k('x'), 0, 0)),
    res(BinaryOpcode.Add, BinaryStatus.KeyExists),
  ],
  [
    cat(encodeBinaryGet(BinaryOpcode.Get, k('k1'))),
    res(BinaryOpcode.Get, 0, { extras: flags(9), value: k('abc') }),
  ],
  [cat(encodeBinaryGet(BinaryOpcode.GetK, k('k2'))), res(BinaryOpcode.GetK, BinaryStatus.KeyNotFound)],
  [
    cat(encodeBinaryArithmetic(BinaryOpcode.Increment, k('n'), 3n, 10n, 0)),
    res(BinaryOpcode.Increment, 0, { value: counter(10n) }),
  ],
  [cat(encodeBinaryDelete(BinaryOpcode.Delete, k('k1'))), res(BinaryOpcode.Delete)],
];

const BINARY_OPS = [
  'binary set k1 stored value=abc flags=9 exp=60',
  'binary add k1 not_stored value=x flags=0 exp=0',
  'binary get k1 hit value=abc flags=9',
  'binary get k2 miss',
  'binary incr n number exp=0 delta=3 initial=10 number=10',
  'binary delete k1 deleted',
];

describe('ops from requests already paired with their replies', () => {
  it('text and meta: the same operations as capture pairing the same bytes', () => {
    assert.deepEqual(captured(TEXT), TEXT_OPS);
    assert.deepEqual(pairedText(TEXT), TEXT_OPS);
  });

  it('binary: the same operations as capture pairing the same bytes', () => {
    assert.deepEqual(captured(BINARY), BINARY_OPS);
    assert.deepEqual(pairedBinary(BINARY), BINARY_OPS);
  });

  it('a request whose reply never comes: a mutation loses its key on the target, a read reports nothing', () => {
    const ops: Operation[] = [];
    const paired = new PairedOperations((op) => ops.push(op));
    const requests = new FrameDecoder(new AsciiRequestParser());
    for (const line of ['set a 0 0 1\r\nx\r\n', 'get a b\r\n', 'gat 5 a\r\n', 'incr n 1\r\n']) {
      paired.textLost(frames<AsciiRequest>(requests, k(line))[0]!, 1, 1000);
    }
    assert.deepEqual(ops.map(show), [
      'text set a unknown exp=0',
      'text gat a unknown exp=5',
      'text incr n unknown delta=1',
    ]);
    assert.equal(paired.counters.droppedReads, 2);
    assert.equal(paired.counters.unknownOutcomes, 3);
  });

  it('a quiet increment that sent nothing before its fence succeeded; admin commands are never operations', () => {
    const ops: Operation[] = [];
    const paired = new PairedOperations((op) => ops.push(op));
    const requests = new FrameDecoder(new AsciiRequestParser());
    paired.textQuiet(frames<AsciiRequest>(requests, k('ma c q N0 J5\r\n'))[0]!, 1, 1000);
    const stats = frames<AsciiRequest>(requests, k('stats\r\n'))[0]!;
    paired.text(stats, { kind: 'end' }, 1, 1000);
    assert.deepEqual(ops.map(show), ['meta incr c number delta=1']);
    assert.equal(paired.counters.adminCommands, 1);
  });
});
