/**
 * TCP reassembly for a passive observer: the flow table turns captured
 * segments into each connection's two byte streams, in order, every byte
 * once, with losses reported as gaps so a protocol parser can resynchronise.
 *
 * What the observer can and cannot know shapes the rules:
 * - A connection seen from its SYN starts at its first byte. One already open
 *   when capture began starts at the first payload seen, and says so
 *   (`midstream`): the first bytes may be the middle of a message.
 * - A segment ahead of the expected sequence number waits in a bounded
 *   per-direction buffer for the missing bytes. The missing bytes are declared
 *   lost (a gap) once the receiver acknowledges past them (it has them, so
 *   the sender will not send them again and the capture missed them), when
 *   the buffer would overflow, or when the flow ends.
 * - Retransmitted and overlapping bytes are delivered once: the first copy
 *   seen wins.
 * - Sequence numbers compare modulo 2^32 (RFC 9293, section 3.4), so a stream
 *   crossing the wrap point reads on without a hitch.
 *
 * Memory is bounded by `maxFlows` (the least recently active flow is evicted
 * to make room) and `maxBufferedBytes` per direction. In-order payload is
 * handed out as a view into the capture buffer, without a copy; only
 * out-of-order segments are copied, so that the buffer bound is the real
 * memory held.
 */
import { formatAddress, type IpFamily } from './address.js';
import { rangeContains, type AddressRange } from './filter.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type TcpSegment } from './tcp.js';

export type Direction = 'request' | 'response';

/**
 * Why a flow ended: both FINs delivered, a RST, no packet for the idle
 * timeout, evicted to stay under `maxFlows`, the client port reused by a new
 * SYN before the old flow was seen to close, or `closeAll()` (end of capture).
 */
export type CloseReason = 'fin' | 'rst' | 'idle' | 'evicted' | 'reused' | 'end';

export interface Endpoint {
  readonly family: IpFamily;
  readonly address: string;
  readonly port: number;
}

export interface Flow {
  /** Unique within one table, increasing in order of opening. */
  readonly id: number;
  readonly client: Endpoint;
  /** The endpoint whose port is a server port. */
  readonly server: Endpoint;
  /** The connection was open before capture saw it: streams may start inside a message. */
  readonly midstream: boolean;
  readonly openedMicros: number;
}

/**
 * Receives a table's events, synchronously, in capture order. A `data` chunk
 * is a view valid only during the call: copy what must outlive it.
 */
export interface FlowListener {
  open(flow: Flow): void;
  data(flow: Flow, direction: Direction, chunk: Buffer, timestampMicros: number): void;
  /** `missingBytes` of the stream were not captured; the next data follows them. */
  gap(flow: Flow, direction: Direction, missingBytes: number): void;
  close(flow: Flow, reason: CloseReason): void;
}

export interface FlowTableOptions {
  /** Ports that identify the server side of a connection. */
  readonly serverPorts: Iterable<number>;
  /** Most flows tracked at once (default 65,536); the least recently active is evicted beyond. */
  readonly maxFlows?: number;
  /** Most out-of-order bytes held per direction (default 1 MiB); beyond, the oldest hole becomes a gap. */
  readonly maxBufferedBytes?: number;
  /** Most out-of-order bytes held by all flows together (default 64 MiB); beyond, as above. */
  readonly maxTotalBufferedBytes?: number;
  /** A flow with no packet for this long is closed by `sweep()` (default 10 minutes). */
  readonly idleTimeoutMicros?: number;
  /** Connections from these clients are not tracked. */
  readonly excludeClients?: readonly AddressRange[];
}

export interface FlowCounters {
  /** TCP segments offered to the table. */
  packets: number;
  /** Payload bytes delivered in order. */
  bytes: number;
  flowsOpened: number;
  flowsClosed: number;
  flowsEvicted: number;
  flowsMidstream: number;
  outOfOrderSegments: number;
  retransmittedBytes: number;
  gaps: number;
  gapBytes: number;
  /** Times the out-of-order buffer was full and a hole was declared lost early. */
  overflows: number;
  /** Segments of excluded clients. */
  excludedPackets: number;
  /** Segments with no server port on either side. */
  unmatchedPackets: number;
  /** Segments of no known flow that cannot open one (a lone ACK, FIN or RST). */
  strayPackets: number;
}

const DEFAULT_MAX_FLOWS = 65_536;
const DEFAULT_MAX_BUFFERED = 1024 * 1024;
const DEFAULT_MAX_TOTAL_BUFFERED = 64 * 1024 * 1024;
const DEFAULT_IDLE_MICROS = 10 * 60 * 1e6;

/** Signed distance from sequence number b to a, modulo 2^32. */
function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

interface Held {
  seq: number;
  data: Buffer;
  timestampMicros: number;
}

class Stream {
  started = false;
  /** The next sequence number to deliver. */
  next = 0;
  /** Sequence number of the FIN, once seen. */
  fin = -1;
  finished = false;
  /** Out-of-order segments, sorted, not overlapping each other. */
  held: Held[] = [];
  heldBytes = 0;

  start(seq: number): void {
    this.started = true;
    this.next = seq >>> 0;
  }
}

class FlowState implements Flow {
  readonly id: number;
  readonly client: Endpoint;
  readonly server: Endpoint;
  readonly midstream: boolean;
  readonly openedMicros: number;
  readonly family: IpFamily;
  readonly clientWords: Uint32Array;
  readonly serverWords: Uint32Array;
  readonly key: number;
  readonly request = new Stream();
  readonly response = new Stream();
  /** Sequence number of the client's SYN, when seen (to tell a retransmitted SYN from port reuse). */
  synSeq = -1;
  lastMicros: number;
  /** Next flow in the same hash bucket. */
  chain: FlowState | undefined;
  /** Activity list, least recently active first. */
  older: FlowState | undefined;
  newer: FlowState | undefined;

  constructor(id: number, seg: TcpSegment, clientIsSrc: boolean, midstream: boolean, key: number) {
    this.id = id;
    this.family = seg.family;
    this.clientWords = Uint32Array.from(clientIsSrc ? seg.src : seg.dst);
    this.serverWords = Uint32Array.from(clientIsSrc ? seg.dst : seg.src);
    const clientPort = clientIsSrc ? seg.srcPort : seg.dstPort;
    const serverPort = clientIsSrc ? seg.dstPort : seg.srcPort;
    this.client = {
      family: seg.family,
      address: formatAddress(seg.family, this.clientWords),
      port: clientPort,
    };
    this.server = {
      family: seg.family,
      address: formatAddress(seg.family, this.serverWords),
      port: serverPort,
    };
    this.midstream = midstream;
    this.openedMicros = seg.timestampMicros;
    this.lastMicros = seg.timestampMicros;
    this.key = key;
  }
}

export class FlowTable {
  readonly counters: FlowCounters = {
    packets: 0,
    bytes: 0,
    flowsOpened: 0,
    flowsClosed: 0,
    flowsEvicted: 0,
    flowsMidstream: 0,
    outOfOrderSegments: 0,
    retransmittedBytes: 0,
    gaps: 0,
    gapBytes: 0,
    overflows: 0,
    excludedPackets: 0,
    unmatchedPackets: 0,
    strayPackets: 0,
  };
  private readonly listener: FlowListener;
  private readonly serverPorts: Uint8Array;
  private readonly maxFlows: number;
  private readonly maxBuffered: number;
  private readonly maxTotalBuffered: number;
  /** Out-of-order bytes held by all flows. */
  private held = 0;
  private readonly idleMicros: number;
  private readonly excluded: readonly AddressRange[];
  /** Buckets by a small-integer hash of the client endpoint; collisions chain through `FlowState.chain`. */
  private readonly buckets = new Map<number, FlowState>();
  private count = 0;
  private nextId = 1;
  private oldest: FlowState | undefined;
  private newest: FlowState | undefined;

  constructor(listener: FlowListener, options: FlowTableOptions) {
    this.listener = listener;
    // One byte per port: a lookup without hashing, 64 KiB once per table.
    this.serverPorts = new Uint8Array(65536);
    for (const port of options.serverPorts) this.serverPorts[port & 0xffff] = 1;
    this.maxFlows = Math.max(1, options.maxFlows ?? DEFAULT_MAX_FLOWS);
    this.maxBuffered = Math.max(0, options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED);
    this.maxTotalBuffered = Math.max(0, options.maxTotalBufferedBytes ?? DEFAULT_MAX_TOTAL_BUFFERED);
    this.idleMicros = options.idleTimeoutMicros ?? DEFAULT_IDLE_MICROS;
    this.excluded = options.excludeClients ?? [];
  }

  /** Flows being tracked. */
  get size(): number {
    return this.count;
  }

  /** Out-of-order bytes held by all flows, waiting for the bytes before them. */
  get bufferedBytes(): number {
    return this.held;
  }

  onPacket(seg: TcpSegment): void {
    this.counters.packets++;
    const dstIsServer = this.serverPorts[seg.dstPort] === 1;
    const srcIsServer = this.serverPorts[seg.srcPort] === 1;
    if (!dstIsServer && !srcIsServer) {
      this.counters.unmatchedPackets++;
      return;
    }
    // Both ports server ports (two servers talking): the SYN's target, else the lower port, serves.
    const clientIsSrc =
      dstIsServer && srcIsServer
        ? (seg.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN || seg.dstPort <= seg.srcPort
        : dstIsServer;
    const key = clientIsSrc ? endpointKey(seg.src, seg.srcPort) : endpointKey(seg.dst, seg.dstPort);
    let flow = this.find(seg, clientIsSrc, key);
    const flags = seg.flags;
    if (flow !== undefined && (flags & (TCP_SYN | TCP_ACK)) === TCP_SYN && clientIsSrc) {
      if (flow.synSeq === seg.seq) return; // a retransmitted SYN
      this.finish(flow, 'reused');
      flow = undefined;
    }
    if (flow === undefined) {
      flow = this.open(seg, clientIsSrc, key);
      if (flow === undefined) return;
    } else {
      this.touch(flow, seg.timestampMicros);
    }
    const stream = clientIsSrc ? flow.request : flow.response;
    const direction: Direction = clientIsSrc ? 'request' : 'response';
    if (flags & TCP_RST) {
      this.finish(flow, 'rst');
      return;
    }
    let seq = seg.seq;
    if (flags & TCP_SYN) {
      if (!stream.started) stream.start(seq + 1);
      seq = (seq + 1) >>> 0;
    }
    if (!stream.started && (seg.payloadLength > 0 || flags & TCP_FIN)) stream.start(seq);
    if (stream.started) {
      if (seg.payloadLength > 0) {
        this.segment(flow, direction, stream, seq, seg.payload, seg.payloadLength, seg.timestampMicros);
      }
      if (flags & TCP_FIN && stream.fin < 0) stream.fin = (seq + seg.payloadLength) >>> 0;
    }
    if (flags & TCP_ACK) {
      const peer = clientIsSrc ? flow.response : flow.request;
      if (peer.started) this.acknowledged(flow, clientIsSrc ? 'response' : 'request', peer, seg.ack);
    }
    if (this.ended(stream) && this.ended(clientIsSrc ? flow.response : flow.request))
      this.finish(flow, 'fin');
  }

  /** Closes flows idle since before `nowMicros - idleTimeout`; returns how many. */
  sweep(nowMicros: number): number {
    let closed = 0;
    while (this.oldest !== undefined && nowMicros - this.oldest.lastMicros > this.idleMicros) {
      this.finish(this.oldest, 'idle');
      closed++;
    }
    return closed;
  }

  /** Closes every flow, delivering what is held (end of a capture file). */
  closeAll(reason: CloseReason = 'end'): void {
    while (this.oldest !== undefined) this.finish(this.oldest, reason);
  }

  private find(seg: TcpSegment, clientIsSrc: boolean, key: number): FlowState | undefined {
    const clientPort = clientIsSrc ? seg.srcPort : seg.dstPort;
    const serverPort = clientIsSrc ? seg.dstPort : seg.srcPort;
    const client = clientIsSrc ? seg.src : seg.dst;
    const server = clientIsSrc ? seg.dst : seg.src;
    for (let f = this.buckets.get(key); f !== undefined; f = f.chain) {
      if (
        f.client.port === clientPort &&
        f.server.port === serverPort &&
        f.family === seg.family &&
        sameWords(f.clientWords, client) &&
        sameWords(f.serverWords, server)
      ) {
        return f;
      }
    }
    return undefined;
  }

  private open(seg: TcpSegment, clientIsSrc: boolean, key: number): FlowState | undefined {
    const flags = seg.flags;
    const syn = (flags & TCP_SYN) !== 0;
    if (!syn && (seg.payloadLength === 0 || flags & TCP_RST)) {
      this.counters.strayPackets++;
      return undefined;
    }
    // A SYN travels client to server, a SYN-ACK back; anything else the wrong way round is stray.
    if (syn && clientIsSrc === ((flags & TCP_ACK) !== 0)) {
      this.counters.strayPackets++;
      return undefined;
    }
    if (this.excluded.length > 0) {
      const client = clientIsSrc ? seg.src : seg.dst;
      for (const range of this.excluded) {
        if (rangeContains(range, seg.family, client)) {
          this.counters.excludedPackets++;
          return undefined;
        }
      }
    }
    if (this.count >= this.maxFlows && this.oldest !== undefined) {
      this.counters.flowsEvicted++;
      this.finish(this.oldest, 'evicted');
    }
    const flow = new FlowState(this.nextId++, seg, clientIsSrc, !syn, key);
    if (syn && clientIsSrc) flow.synSeq = seg.seq;
    // The acknowledgment number is where the peer's stream goes on: start it
    // there so that a loss of its first segment is seen as a gap.
    if (flags & TCP_ACK) (clientIsSrc ? flow.response : flow.request).start(seg.ack);
    flow.chain = this.buckets.get(key);
    this.buckets.set(key, flow);
    this.count++;
    this.link(flow);
    this.counters.flowsOpened++;
    if (flow.midstream) this.counters.flowsMidstream++;
    this.listener.open(flow);
    return flow;
  }

  /** Handles `length` payload bytes at `seq`, of which `payload` were captured. */
  private segment(
    flow: FlowState,
    direction: Direction,
    s: Stream,
    seq: number,
    payload: Buffer,
    length: number,
    micros: number,
  ): void {
    for (;;) {
      const ahead = seqDiff(seq, s.next);
      if (ahead <= 0) break;
      if (
        s.heldBytes + payload.length <= this.maxBuffered &&
        this.held + payload.length <= this.maxTotalBuffered
      ) {
        this.counters.outOfOrderSegments++;
        this.hold(s, seq, payload, micros);
        return;
      }
      // No room: the oldest hole will not be filled in time; declare it lost.
      this.counters.overflows++;
      const first = s.held[0];
      this.skipTo(flow, direction, s, first !== undefined && seqDiff(first.seq, seq) < 0 ? first.seq : seq);
    }
    const skip = -seqDiff(seq, s.next);
    if (skip >= length) {
      this.counters.retransmittedBytes += length;
      return;
    }
    this.counters.retransmittedBytes += skip;
    if (skip < payload.length) this.deliver(flow, direction, payload.subarray(skip), micros);
    s.next = (seq + length) >>> 0;
    // Bytes the snap length cut off: never coming.
    if (payload.length < length) this.gap(flow, direction, length - Math.max(skip, payload.length));
    this.drain(flow, direction, s);
  }

  /** Copies an out-of-order segment into the held list, minus the parts held already. */
  private hold(s: Stream, seq: number, payload: Buffer, micros: number): void {
    const held = s.held;
    const end = (seq + payload.length) >>> 0;
    let from = seq;
    let i = 0;
    while (seqDiff(end, from) > 0) {
      const h = held[i];
      if (h === undefined) {
        this.insertHeld(s, i, from, end, payload, seq, micros);
        return;
      }
      const hEnd = (h.seq + h.data.length) >>> 0;
      if (seqDiff(hEnd, from) <= 0) {
        i++;
        continue;
      }
      if (seqDiff(h.seq, from) > 0) {
        // A hole before h: the new bytes fill it.
        const pieceEnd = seqDiff(h.seq, end) < 0 ? h.seq : end;
        this.insertHeld(s, i, from, pieceEnd, payload, seq, micros);
        i++;
        from = pieceEnd;
        if (pieceEnd === end) return;
      }
      // [from, min(hEnd, end)) is held already: the first copy wins.
      const overlapEnd = seqDiff(hEnd, end) < 0 ? hEnd : end;
      this.counters.retransmittedBytes += seqDiff(overlapEnd, from);
      from = overlapEnd;
      i++;
    }
  }

  private insertHeld(
    s: Stream,
    at: number,
    from: number,
    to: number,
    payload: Buffer,
    seq: number,
    micros: number,
  ): void {
    const data = Buffer.from(payload.subarray(seqDiff(from, seq), seqDiff(to, seq)));
    s.held.splice(at, 0, { seq: from, data, timestampMicros: micros });
    s.heldBytes += data.length;
    this.held += data.length;
  }

  /** Delivers held segments that have become contiguous. */
  private drain(flow: FlowState, direction: Direction, s: Stream): void {
    const held = s.held;
    let n = 0;
    while (n < held.length && seqDiff(held[n]!.seq, s.next) <= 0) {
      const h = held[n]!;
      n++;
      s.heldBytes -= h.data.length;
      this.held -= h.data.length;
      const skip = seqDiff(s.next, h.seq);
      if (skip >= h.data.length) {
        this.counters.retransmittedBytes += h.data.length;
        continue;
      }
      this.counters.retransmittedBytes += skip;
      this.deliver(flow, direction, skip === 0 ? h.data : h.data.subarray(skip), h.timestampMicros);
      s.next = (h.seq + h.data.length) >>> 0;
    }
    if (n > 0) held.splice(0, n);
  }

  /** Declares the bytes up to `target` lost and goes on from there. */
  private skipTo(flow: FlowState, direction: Direction, s: Stream, target: number): void {
    const missing = seqDiff(target, s.next);
    if (missing > 0) {
      s.next = target >>> 0;
      this.gap(flow, direction, missing);
    }
    this.drain(flow, direction, s);
  }

  /** The peer acknowledged up to `ack`: every byte before it not seen by now never will be. */
  private acknowledged(flow: FlowState, direction: Direction, s: Stream, ack: number): void {
    // A FIN takes one sequence number but is no byte of the stream.
    const limit = s.fin >= 0 && seqDiff(ack, s.fin) > 0 ? s.fin : ack;
    while (seqDiff(limit, s.next) > 0) {
      const first = s.held[0];
      this.skipTo(
        flow,
        direction,
        s,
        first !== undefined && seqDiff(first.seq, limit) < 0 ? first.seq : limit,
      );
    }
  }

  private ended(s: Stream): boolean {
    if (!s.finished && s.fin >= 0 && s.next === s.fin) s.finished = true;
    return s.finished;
  }

  private deliver(flow: FlowState, direction: Direction, chunk: Buffer, micros: number): void {
    this.counters.bytes += chunk.length;
    this.listener.data(flow, direction, chunk, micros);
  }

  private gap(flow: FlowState, direction: Direction, missing: number): void {
    this.counters.gaps++;
    this.counters.gapBytes += missing;
    this.listener.gap(flow, direction, missing);
  }

  /** Hands out what is held (holes as gaps), then closes and forgets the flow. */
  private finish(flow: FlowState, reason: CloseReason): void {
    for (const [direction, s] of [
      ['request', flow.request],
      ['response', flow.response],
    ] as const) {
      while (s.held.length > 0) this.skipTo(flow, direction, s, s.held[0]!.seq);
    }
    this.unlink(flow);
    let prev: FlowState | undefined;
    for (let f = this.buckets.get(flow.key); f !== undefined; prev = f, f = f.chain) {
      if (f !== flow) continue;
      if (prev !== undefined) prev.chain = f.chain;
      else if (f.chain !== undefined) this.buckets.set(flow.key, f.chain);
      else this.buckets.delete(flow.key);
      break;
    }
    this.count--;
    this.counters.flowsClosed++;
    this.listener.close(flow, reason);
  }

  private touch(flow: FlowState, micros: number): void {
    flow.lastMicros = micros;
    if (this.newest === flow) return;
    this.unlink(flow);
    this.link(flow);
  }

  private link(flow: FlowState): void {
    flow.older = this.newest;
    flow.newer = undefined;
    if (this.newest !== undefined) this.newest.newer = flow;
    else this.oldest = flow;
    this.newest = flow;
  }

  private unlink(flow: FlowState): void {
    if (flow.older !== undefined) flow.older.newer = flow.newer;
    else this.oldest = flow.newer;
    if (flow.newer !== undefined) flow.newer.older = flow.older;
    else this.newest = flow.older;
    flow.older = flow.newer = undefined;
  }
}

/**
 * A small-integer (V8 Smi) hash of an endpoint, so that the bucket map never
 * boxes a number. The port is mixed in after the address has been scrambled:
 * XORing them raw would cancel out for clients whose address and port rise
 * together.
 */
function endpointKey(words: Uint32Array, port: number): number {
  let h = Math.imul(words[0]! ^ 0x2545f491, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 16) ^ port, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ words[1]!, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ words[2]!, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ words[3]!, 0xc2b2ae35);
  return (h ^ (h >>> 16)) & 0x3fffffff;
}

function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3];
}
