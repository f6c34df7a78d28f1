/**
 * Operation extraction throughput, single core: synthetic flows of pipelined
 * text sets and gets (100-byte values, half the gets hits) and the same in
 * binary, handed to the OperationExtractor in TCP-segment-sized chunks the
 * way the capture layer hands them on (request batch, then its replies).
 * Prints one JSON object: per case, the median of 5 runs in operations/s
 * and MB/s of both directions.
 *
 *   npx tsc -p . && node dist/bench/ops.js
 */
import type { Flow } from '../src/capture/tcp-reassembly.js';
import { OperationExtractor } from '../src/ops/extractor.js';
import {
  BinaryOpcode,
  encodeBinaryGet,
  encodeBinaryResponse,
  encodeBinaryStore,
} from '../src/protocol/binary.js';

const RUNS = 5;
const FLOWS = 100;
const BATCHES = 100;
const PER_BATCH = 20; // 10 sets then 10 gets, pipelined

interface Case {
  readonly name: string;
  readonly segment: number;
  readonly binary: boolean;
}

const cases: Case[] = [
  { name: 'text, 1448-byte segments', segment: 1448, binary: false },
  { name: 'text, 64 KiB segments', segment: 65536, binary: false },
  { name: 'binary, 1448-byte segments', segment: 1448, binary: true },
];

const value = Buffer.alloc(100, 0x76);

/** One batch of one flow: its request bytes and its reply bytes. */
function batch(flow: number, n: number, binary: boolean): [Buffer, Buffer] {
  const req: Buffer[] = [];
  const res: Buffer[] = [];
  for (let i = 0; i < PER_BATCH / 2; i++) {
    const key = Buffer.from(`user:${flow}:${n}:${i}`);
    if (binary) {
      req.push(...encodeBinaryStore(BinaryOpcode.Set, key, value, 0, 0, 0n, i));
      res.push(...encodeBinaryResponse({ opcode: BinaryOpcode.Set, opaque: i }));
    } else {
      req.push(Buffer.from(`set ${key} 0 0 ${value.length}\r\n`), value, Buffer.from('\r\n'));
      res.push(Buffer.from('STORED\r\n'));
    }
  }
  for (let i = 0; i < PER_BATCH / 2; i++) {
    const key = Buffer.from(`user:${flow}:${n}:${i}`);
    const hit = i % 2 === 0;
    if (binary) {
      req.push(...encodeBinaryGet(BinaryOpcode.Get, key, 100 + i));
      res.push(
        ...encodeBinaryResponse(
          hit
            ? { opcode: BinaryOpcode.Get, opaque: 100 + i, extras: Buffer.alloc(4), value }
            : { opcode: BinaryOpcode.Get, opaque: 100 + i, status: 1 },
        ),
      );
    } else {
      req.push(Buffer.from(`get ${key}\r\n`));
      if (hit) res.push(Buffer.from(`VALUE ${key} 0 ${value.length}\r\n`), value, Buffer.from('\r\nEND\r\n'));
      else res.push(Buffer.from('END\r\n'));
    }
  }
  return [Buffer.concat(req), Buffer.concat(res)];
}

function segments(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < buf.length; at += size) out.push(buf.subarray(at, at + size));
  return out;
}

interface Event {
  readonly flow: number;
  readonly request: boolean;
  readonly chunk: Buffer;
}

function synthesize(c: Case): { events: Event[]; bytes: number } {
  const events: Event[] = [];
  let bytes = 0;
  for (let n = 0; n < BATCHES; n++) {
    for (let f = 0; f < FLOWS; f++) {
      const [req, res] = batch(f, n, c.binary);
      for (const chunk of segments(req, c.segment)) events.push({ flow: f, request: true, chunk });
      for (const chunk of segments(res, c.segment)) events.push({ flow: f, request: false, chunk });
      bytes += req.length + res.length;
    }
  }
  return { events, bytes };
}

function run(events: readonly Event[]): { seconds: number; operations: number } {
  let operations = 0;
  const extractor = new OperationExtractor(() => {
    operations++;
  });
  const flows: Flow[] = [];
  for (let f = 0; f < FLOWS; f++) {
    const flow: Flow = {
      id: f + 1,
      client: { family: 4, address: '10.0.0.1', port: 30000 + f },
      server: { family: 4, address: '10.0.0.9', port: 11211 },
      midstream: false,
      openedMicros: 0,
    };
    flows.push(flow);
    extractor.open(flow);
  }
  const start = process.hrtime.bigint();
  let micros = 1;
  for (const e of events) {
    extractor.data(flows[e.flow]!, e.request ? 'request' : 'response', e.chunk, micros++);
  }
  for (const flow of flows) extractor.close(flow, 'fin');
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { seconds, operations };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const results: Record<string, unknown> = {};
for (const c of cases) {
  const { events, bytes } = synthesize(c);
  run(events); // warm-up
  const rates: number[] = [];
  const mbs: number[] = [];
  let operations = 0;
  for (let r = 0; r < RUNS; r++) {
    const { seconds, operations: ops } = run(events);
    operations = ops;
    rates.push(ops / seconds);
    mbs.push(bytes / seconds / 1e6);
  }
  results[c.name] = {
    operations,
    operationsPerSecond: Math.round(median(rates)),
    megabytesPerSecond: Math.round(median(mbs) * 10) / 10,
    runs: RUNS,
  };
}
console.log(JSON.stringify(results, null, 2));
