/**
 * Capture path throughput, single core: a synthetic pcap of many concurrent
 * memcached-like connections (handshake, get/VALUE exchanges with their
 * ACKs, FIN), interleaved packet by packet across flows, pushed in 64 KiB
 * chunks through the pcap reader, the link/IP/TCP decoder and the flow
 * table. Prints one JSON object: per case, the median of 5 runs in packets/s,
 * capture MB/s and delivered payload MB/s.
 *
 *   npx tsc -p . && node dist/bench/capture.js
 */
import { CapturePipeline } from '../src/capture/pipeline.js';
import { LINKTYPE } from '../src/capture/link.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '../src/capture/tcp.js';
import type { FlowListener } from '../src/capture/tcp-reassembly.js';
import { buildTcpFrame, PcapWriter } from '../src/capture/writer.js';

const RUNS = 5;
const CHUNK = 64 * 1024;
const SERVER_PORT = 11211;

interface Case {
  readonly name: string;
  readonly flows: number;
  readonly exchanges: number;
  readonly v6: boolean;
  /** Fraction of requests sent as two segments captured in swapped order. */
  readonly reordered: number;
}

const cases: Case[] = [
  { name: 'ipv4, 2000 flows, in order', flows: 2000, exchanges: 100, v6: false, reordered: 0 },
  { name: 'ipv6, 2000 flows, in order', flows: 2000, exchanges: 100, v6: true, reordered: 0 },
  { name: 'ipv4, 2000 flows, 1% reordered', flows: 2000, exchanges: 100, v6: false, reordered: 0.01 },
  { name: 'ipv4, 20000 flows, in order', flows: 20000, exchanges: 10, v6: false, reordered: 0 },
];

function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    return (s >>> 8) / 0x1000000;
  };
}

/** The capture and its packet count. */
function synthesize(c: Case): { capture: Buffer; packets: number } {
  const writer = new PcapWriter({ linkType: LINKTYPE.ETHERNET });
  const parts: Buffer[] = [writer.header()];
  const random = lcg(42);
  let micros = 1_700_000_000_000_000;
  const server = c.v6 ? 'fd00::9' : '10.0.0.9';
  const clientOf = (f: number): string =>
    c.v6 ? `fd00::1:${(f >> 8).toString(16)}:${(f & 255).toString(16)}` : `10.1.${f >> 8}.${f & 255}`;
  const clientSeq = new Array<number>(c.flows).fill(0).map((_, f) => (f * 2654435761) >>> 0);
  const serverSeq = new Array<number>(c.flows).fill(0).map((_, f) => (f * 40503 + 7) >>> 0);
  const emit = (f: number, up: boolean, flags: number, payload?: Buffer): void => {
    const spec = {
      src: up ? clientOf(f) : server,
      dst: up ? server : clientOf(f),
      srcPort: up ? 30000 + (f % 30000) : SERVER_PORT,
      dstPort: up ? SERVER_PORT : 30000 + (f % 30000),
      seq: up ? clientSeq[f]! : serverSeq[f]!,
      ack: up ? serverSeq[f]! : clientSeq[f]!,
      flags,
      ...(payload ? { payload } : {}),
    };
    parts.push(writer.record((micros += 3), buildTcpFrame(LINKTYPE.ETHERNET, spec)));
    const advance = (payload?.length ?? 0) + (flags & (TCP_SYN | TCP_FIN) ? 1 : 0);
    if (up) clientSeq[f] = (clientSeq[f]! + advance) >>> 0;
    else serverSeq[f] = (serverSeq[f]! + advance) >>> 0;
  };
  for (let f = 0; f < c.flows; f++) {
    emit(f, true, TCP_SYN);
    emit(f, false, TCP_SYN | TCP_ACK);
    emit(f, true, TCP_ACK);
  }
  const value = Buffer.alloc(100, 0x78);
  for (let i = 0; i < c.exchanges; i++) {
    for (let f = 0; f < c.flows; f++) {
      const request = Buffer.from(`get user:${f}:${i}\r\n`);
      if (random() < c.reordered) {
        // Two segments, the second captured first.
        const seq = clientSeq[f]!;
        clientSeq[f] = (seq + 5) >>> 0;
        emit(f, true, TCP_ACK | TCP_PSH, request.subarray(5));
        const after = clientSeq[f]!;
        clientSeq[f] = seq;
        emit(f, true, TCP_ACK | TCP_PSH, request.subarray(0, 5));
        clientSeq[f] = after;
      } else {
        emit(f, true, TCP_ACK | TCP_PSH, request);
      }
      const header = Buffer.from(`VALUE user:${f}:${i} 0 100\r\n`);
      emit(f, false, TCP_ACK | TCP_PSH, Buffer.concat([header, value, Buffer.from('\r\nEND\r\n')]));
      if (i % 2 === 1) emit(f, true, TCP_ACK); // a delayed ACK every other response
    }
  }
  for (let f = 0; f < c.flows; f++) {
    emit(f, true, TCP_FIN | TCP_ACK);
    emit(f, false, TCP_FIN | TCP_ACK);
    emit(f, true, TCP_ACK);
  }
  return { capture: Buffer.concat(parts), packets: parts.length - 1 };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function once(capture: Buffer): { seconds: number; payload: number; closed: number } {
  let payload = 0;
  let closed = 0;
  const listener: FlowListener = {
    open: () => {},
    data: (_flow, _direction, chunk) => {
      payload += chunk.length;
    },
    gap: () => {},
    close: () => {
      closed++;
    },
  };
  const pipeline = new CapturePipeline(listener, { serverPorts: [SERVER_PORT] });
  const start = process.hrtime.bigint();
  for (let at = 0; at < capture.length; at += CHUNK) pipeline.push(capture.subarray(at, at + CHUNK));
  pipeline.end();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { seconds, payload, closed };
}

const results: Record<string, object> = {};
for (const c of cases) {
  const { capture, packets } = synthesize(c);
  once(capture); // warm up
  const runs = Array.from({ length: RUNS }, () => once(capture));
  const first = runs[0]!;
  if (first.closed !== c.flows) throw new Error(`${c.name}: ${first.closed} of ${c.flows} flows closed`);
  const seconds = median(runs.map((r) => r.seconds));
  results[c.name] = {
    packets,
    captureMB: +(capture.length / 1e6).toFixed(1),
    packetsPerSec: Math.round(packets / seconds),
    captureMBPerSec: +(capture.length / 1e6 / seconds).toFixed(1),
    payloadMBPerSec: +(first.payload / 1e6 / seconds).toFixed(1),
    medianRunMs: +(seconds * 1000).toFixed(1),
  };
}
console.log(
  JSON.stringify(
    { bench: 'capture', runs: RUNS, chunkBytes: CHUNK, node: process.version, results },
    null,
    2,
  ),
);
