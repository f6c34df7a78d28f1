/**
 * One direction of a TCP connection, rebuilt by a passive observer: bytes
 * handed on in order and once each, losses handed on as gaps.
 *
 * - A segment ahead of the expected sequence number waits, copied, in a
 *   bounded list. The bytes missing before it are declared lost (a gap) once
 *   the receiver acknowledges past them (it has them, so the sender will not
 *   send them again: the capture missed them), when the list would overflow,
 *   or when the flow ends.
 * - Retransmitted and overlapping bytes are handed on once: the first copy
 *   seen wins.
 * - Sequence numbers compare modulo 2^32 (RFC 9293, section 3.4), so a
 *   stream crossing the wrap point reads on without a hitch.
 * - In-order payload is handed on as a view into the capture buffer, without
 *   a copy; only held segments are copied, so that the bound on held bytes is
 *   the memory really held.
 */
import type { Direction, Flow, FlowCounters, FlowListener } from './tcp-reassembly.js';

/** What the streams of one flow table share. */
export interface StreamContext {
  readonly listener: FlowListener;
  readonly counters: FlowCounters;
  /** Most bytes one direction holds. */
  readonly maxBuffered: number;
  /** Most bytes all directions hold together. */
  readonly maxTotalBuffered: number;
  /** Bytes all directions hold now. */
  held: number;
}

/** Signed distance from sequence number b to a, modulo 2^32. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

interface Held {
  seq: number;
  data: Buffer;
  timestampMicros: number;
}

export class TcpStream {
  /** The first sequence number is known (from a SYN, an ACK of the peer, or the first payload). */
  started = false;
  /** The next sequence number to hand on. */
  next = 0;
  /** Sequence number of the FIN, once seen; -1 before. */
  fin = -1;
  private finished = false;
  /** Out-of-order segments, sorted, not overlapping each other. */
  private readonly held: Held[] = [];
  private heldBytes = 0;
  private readonly ctx: StreamContext;
  private readonly flow: Flow;
  private readonly direction: Direction;

  constructor(ctx: StreamContext, flow: Flow, direction: Direction) {
    this.ctx = ctx;
    this.flow = flow;
    this.direction = direction;
  }

  start(seq: number): void {
    this.started = true;
    this.next = seq >>> 0;
  }

  /** Every byte up to the FIN has been handed on (or declared lost). */
  get ended(): boolean {
    if (!this.finished && this.fin >= 0 && this.next === this.fin) this.finished = true;
    return this.finished;
  }

  /** Handles `length` payload bytes at `seq`, of which `payload` were captured. */
  segment(seq: number, payload: Buffer, length: number, micros: number): void {
    const ctx = this.ctx;
    while (seqDiff(seq, this.next) > 0) {
      if (
        this.heldBytes + payload.length <= ctx.maxBuffered &&
        ctx.held + payload.length <= ctx.maxTotalBuffered
      ) {
        ctx.counters.outOfOrderSegments++;
        this.hold(seq, payload, micros);
        return;
      }
      // No room: the oldest hole will not be filled in time; declare it lost.
      ctx.counters.overflows++;
      const first = this.held[0];
      this.skipTo(first !== undefined && seqDiff(first.seq, seq) < 0 ? first.seq : seq);
    }
    const skip = -seqDiff(seq, this.next);
    if (skip >= length) {
      ctx.counters.retransmittedBytes += length;
      return;
    }
    ctx.counters.retransmittedBytes += skip;
    if (skip < payload.length) this.deliver(payload.subarray(skip), micros);
    this.next = (seq + length) >>> 0;
    // Bytes the snap length cut off: never coming.
    if (payload.length < length) this.gap(length - Math.max(skip, payload.length));
    this.drain();
  }

  /** The peer acknowledged up to `ack`: every byte before it not seen by now never will be. */
  acknowledged(ack: number): void {
    // A FIN takes one sequence number but is no byte of the stream.
    const limit = this.fin >= 0 && seqDiff(ack, this.fin) > 0 ? this.fin : ack;
    while (seqDiff(limit, this.next) > 0) {
      const first = this.held[0];
      this.skipTo(first !== undefined && seqDiff(first.seq, limit) < 0 ? first.seq : limit);
    }
  }

  /** Hands on everything held, the holes before it as gaps (the flow is ending). */
  flush(): void {
    while (this.held.length > 0) this.skipTo(this.held[0]!.seq);
  }

  /** Copies an out-of-order segment into the held list, minus the parts held already. */
  private hold(seq: number, payload: Buffer, micros: number): void {
    const held = this.held;
    const end = (seq + payload.length) >>> 0;
    let from = seq;
    let i = 0;
    while (seqDiff(end, from) > 0) {
      const h = held[i];
      if (h === undefined) {
        this.insert(i, from, end, payload, seq, micros);
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
        this.insert(i, from, pieceEnd, payload, seq, micros);
        i++;
        from = pieceEnd;
        if (pieceEnd === end) return;
      }
      // [from, min(hEnd, end)) is held already: the first copy wins.
      const overlapEnd = seqDiff(hEnd, end) < 0 ? hEnd : end;
      this.ctx.counters.retransmittedBytes += seqDiff(overlapEnd, from);
      from = overlapEnd;
      i++;
    }
  }

  /** Holds a copy of payload[from - seq, to - seq) at list position `at`. */
  private insert(at: number, from: number, to: number, payload: Buffer, seq: number, micros: number): void {
    const data = Buffer.from(payload.subarray(seqDiff(from, seq), seqDiff(to, seq)));
    this.held.splice(at, 0, { seq: from, data, timestampMicros: micros });
    this.heldBytes += data.length;
    this.ctx.held += data.length;
  }

  /** Hands on held segments that have become contiguous. */
  private drain(): void {
    const held = this.held;
    let n = 0;
    while (n < held.length && seqDiff(held[n]!.seq, this.next) <= 0) {
      const h = held[n]!;
      n++;
      this.heldBytes -= h.data.length;
      this.ctx.held -= h.data.length;
      const skip = seqDiff(this.next, h.seq);
      if (skip >= h.data.length) {
        this.ctx.counters.retransmittedBytes += h.data.length;
        continue;
      }
      this.ctx.counters.retransmittedBytes += skip;
      this.deliver(skip === 0 ? h.data : h.data.subarray(skip), h.timestampMicros);
      this.next = (h.seq + h.data.length) >>> 0;
    }
    if (n > 0) held.splice(0, n);
  }

  /** Declares the bytes up to `target` lost and goes on from there. */
  private skipTo(target: number): void {
    const missing = seqDiff(target, this.next);
    if (missing > 0) {
      this.next = target >>> 0;
      this.gap(missing);
    }
    this.drain();
  }

  private deliver(chunk: Buffer, micros: number): void {
    this.ctx.counters.bytes += chunk.length;
    if (this.direction === 'request') this.ctx.counters.requestBytes += chunk.length;
    this.ctx.listener.data(this.flow, this.direction, chunk, micros);
  }

  private gap(missing: number): void {
    this.ctx.counters.gaps++;
    this.ctx.counters.gapBytes += missing;
    if (this.direction === 'request') this.ctx.counters.requestGapBytes += missing;
    this.ctx.listener.gap(this.flow, this.direction, missing);
  }
}
