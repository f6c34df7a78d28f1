/**
 * The flow table of a passive observer: finds each captured segment's
 * connection, tells the two directions apart by the server ports, and keeps
 * the connections' lifecycle; tcp-stream.ts rebuilds each direction's bytes.
 *
 * - A connection seen from its SYN starts at its first byte. One already open
 *   when capture began starts at the first payload seen, and says so
 *   (`midstream`): the first bytes may be the middle of a message.
 * - It ends on FIN from both sides (once every byte is handed on), on RST,
 *   when idle (`sweep`), when evicted, or when a new SYN reuses its ports.
 * - Memory is bounded by `maxFlows` (the least recently active flow is
 *   evicted to make room) and by the held out-of-order bytes, per direction
 *   and in all.
 */
import { formatAddress, type IpFamily } from './address.js';
import { rangeContains, type AddressRange } from './filter.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type TcpSegment } from './tcp.js';
import { TcpStream, type StreamContext } from './tcp-stream.js';

export type Direction = 'request' | 'response';

/**
 * Why a flow ended: both FINs delivered, a RST, no packet for the idle
 * timeout, evicted to stay under `maxFlows`, the client port reused by a new
 * SYN before the old flow was seen to close, or `closeAll()` (end of capture).
 */
export type CloseReason = 'fin' | 'rst' | 'idle' | 'evicted' | 'reused' | 'end';

export interface FlowEndpoint {
  readonly family: IpFamily;
  readonly address: string;
  readonly port: number;
}

export interface Flow {
  /** Unique within one table, increasing in order of opening. */
  readonly id: number;
  readonly client: FlowEndpoint;
  /** The endpoint whose port is a server port. */
  readonly server: FlowEndpoint;
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
  /** Of those, bytes client to server (requests). */
  requestBytes: number;
  flowsOpened: number;
  flowsClosed: number;
  flowsEvicted: number;
  flowsMidstream: number;
  outOfOrderSegments: number;
  retransmittedBytes: number;
  gaps: number;
  gapBytes: number;
  /** Of the gap bytes, those client to server: requests never seen. */
  requestGapBytes: number;
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

class FlowState implements Flow {
  readonly id: number;
  readonly client: FlowEndpoint;
  readonly server: FlowEndpoint;
  readonly midstream: boolean;
  readonly openedMicros: number;
  readonly family: IpFamily;
  readonly clientWords: Uint32Array;
  readonly serverWords: Uint32Array;
  readonly key: number;
  readonly request: TcpStream;
  readonly response: TcpStream;
  /** Sequence number of the client's SYN, when seen (to tell a retransmitted SYN from port reuse). */
  synSeq = -1;
  lastMicros: number;
  /** Next flow in the same hash bucket. */
  chain: FlowState | undefined;
  /** Activity list, least recently active first. */
  older: FlowState | undefined;
  newer: FlowState | undefined;

  constructor(
    ctx: StreamContext,
    id: number,
    seg: TcpSegment,
    clientIsSrc: boolean,
    midstream: boolean,
    key: number,
  ) {
    this.id = id;
    this.request = new TcpStream(ctx, this, 'request');
    this.response = new TcpStream(ctx, this, 'response');
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
    requestBytes: 0,
    flowsOpened: 0,
    flowsClosed: 0,
    flowsEvicted: 0,
    flowsMidstream: 0,
    outOfOrderSegments: 0,
    retransmittedBytes: 0,
    gaps: 0,
    gapBytes: 0,
    requestGapBytes: 0,
    overflows: 0,
    excludedPackets: 0,
    unmatchedPackets: 0,
    strayPackets: 0,
  };
  private readonly listener: FlowListener;
  private readonly serverPorts: Uint8Array;
  private readonly maxFlows: number;
  private readonly ctx: StreamContext;
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
    this.ctx = {
      listener,
      counters: this.counters,
      maxBuffered: Math.max(0, options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED),
      maxTotalBuffered: Math.max(0, options.maxTotalBufferedBytes ?? DEFAULT_MAX_TOTAL_BUFFERED),
      held: 0,
    };
    this.idleMicros = options.idleTimeoutMicros ?? DEFAULT_IDLE_MICROS;
    this.excluded = options.excludeClients ?? [];
  }

  /** Flows being tracked. */
  get size(): number {
    return this.count;
  }

  /** Out-of-order bytes held by all flows, waiting for the bytes before them. */
  get bufferedBytes(): number {
    return this.ctx.held;
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
      // A retransmitted SYN: the one seen, or one that fits the stream as the SYN-ACK announced it.
      if (flow.synSeq === seg.seq || (flow.synSeq < 0 && (seg.seq + 1) >>> 0 === flow.request.next)) return;
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
    const peer = clientIsSrc ? flow.response : flow.request;
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
        stream.segment(seq, seg.payload, seg.payloadLength, seg.timestampMicros);
      }
      if (flags & TCP_FIN && stream.fin < 0) stream.fin = (seq + seg.payloadLength) >>> 0;
    }
    if (flags & TCP_ACK && peer.started) peer.acknowledged(seg.ack);
    if (stream.ended && peer.ended) this.finish(flow, 'fin');
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
    const flow = new FlowState(this.ctx, this.nextId++, seg, clientIsSrc, !syn, key);
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

  /** Hands out what is held (holes as gaps), then closes and forgets the flow. */
  private finish(flow: FlowState, reason: CloseReason): void {
    flow.request.flush();
    flow.response.flush();
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
