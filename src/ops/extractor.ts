/**
 * The capture side of `memshift mirror`: a FlowListener that reads both
 * directions of every memcached connection and hands on one Operation per
 * request (per key for multi-key reads) with the outcome its reply reported.
 *
 * It relies on the FlowListener calls and the Flow type only, so the proxy
 * can feed it synthetic flows just as the capture layer feeds it real ones.
 * A malformed stream costs that flow a resync and a counter, never an
 * exception out of `data`.
 */
import type { CloseReason, Direction, Flow, FlowListener } from '../capture/tcp-reassembly.js';
import { B } from '../protocol/bytes.js';
import { DEFAULT_LIMITS, type Limits } from '../protocol/limits.js';
import { AsciiSession } from './ascii-pairing.js';
import { BinarySession } from './binary-pairing.js';
import type { Operation } from './operation.js';
import { ByteBudget } from './budget.js';
import { QuietHold } from './held.js';
import { firstTextRequest, huntBinary } from './resync.js';
import {
  zeroOperationCounters,
  type OperationCounters,
  type PairingSession,
  type SessionContext,
} from './session.js';

export type { OperationCounters } from './session.js';

export interface OperationExtractorOptions {
  /**
   * Bounds for each flow's parsers (line, key and value sizes). A value over
   * the value bound is always skipped by its length, never a reason to hunt.
   */
  readonly limits?: Limits;
  /** Most requests a flow keeps waiting for replies (default 10,000); beyond, all are given up as 'unknown'. */
  readonly maxPendingPerFlow?: number;
  /**
   * How long a flow that lost its place must be idle (nothing pending, no
   * reply) before its replies are trusted again without one that names its
   * request (default 1 second).
   */
  readonly settleMicros?: number;
  /**
   * Longest a quiet mutation waits for the reply that proves its outcome
   * before it is reported anyway (capture time; default 100 ms; see held.ts).
   */
  readonly holdMicros?: number;
  /**
   * Bytes the values of requests awaiting their replies may hold, over all
   * flows (default 128 MiB); beyond, a value is not kept and its key is
   * invalidated on the target.
   */
  readonly maxPendingBytes?: number;
}

const DEFAULT_MAX_PENDING = 10_000;
const DEFAULT_SETTLE_MICROS = 1_000_000;
const DEFAULT_HOLD_MICROS = 100_000;
/** With the replay queues' 256 MiB, fits the systemd unit's MemoryMax=1G with room for the runtime. */
const DEFAULT_PENDING_BYTES = 128 * 1024 * 1024;

type AnySession = PairingSession<unknown, unknown>;

/** A flow whose protocol is not known yet: no request byte seen (or, mid-stream, none recognised). */
const UNDECIDED = null;

export class OperationExtractor implements FlowListener {
  readonly counters: OperationCounters = zeroOperationCounters();
  private ctx: SessionContext;
  private readonly sessions = new Map<number, AnySession | typeof UNDECIDED>();

  constructor(sink: (op: Operation) => void, options: OperationExtractorOptions = {}) {
    this.ctx = {
      sink,
      counters: this.counters,
      limits: observing(options.limits ?? DEFAULT_LIMITS),
      maxPending: Math.max(1, options.maxPendingPerFlow ?? DEFAULT_MAX_PENDING),
      settleMicros: options.settleMicros ?? DEFAULT_SETTLE_MICROS,
      hold: new QuietHold(options.holdMicros ?? DEFAULT_HOLD_MICROS, this.counters),
      pendingBytes: new ByteBudget(options.maxPendingBytes ?? DEFAULT_PENDING_BYTES),
    };
  }

  /**
   * Bounds for flows opened from now on (the servers' limits, once read from
   * them; flows already followed keep theirs).
   */
  useLimits(limits: Limits): void {
    this.ctx = { ...this.ctx, limits: observing(limits) };
  }

  /** Bytes the values of requests awaiting replies hold now, and may hold. */
  get pendingBytes(): { used: number; max: number } {
    return { used: this.ctx.pendingBytes.used, max: this.ctx.pendingBytes.max };
  }

  /** The parser bounds flows opened now get. */
  get limits(): Limits {
    return this.ctx.limits;
  }

  /** Flows being followed. */
  get flows(): number {
    return this.sessions.size;
  }

  open(flow: Flow): void {
    this.counters.flows++;
    if (flow.midstream) this.counters.midstreamFlows++;
    this.sessions.set(flow.id, UNDECIDED);
  }

  /**
   * Capture time has reached `nowMicros` (every packet stamped earlier has
   * been handed over): quiet mutations held past their bound are reported.
   * Packets advance it themselves; a live capture that goes quiet calls it
   * by the clock.
   */
  tick(nowMicros: number): void {
    this.ctx.hold.expire(nowMicros);
  }

  data(flow: Flow, direction: Direction, chunk: Buffer, timestampMicros: number): void {
    this.ctx.hold.expire(timestampMicros);
    let session = this.sessions.get(flow.id);
    if (session === undefined) {
      // A flow never opened here (the proxy may join late): follow it from now on, as mid-stream.
      this.open({ ...flow, midstream: true });
      session = UNDECIDED;
    }
    if (session === UNDECIDED) {
      // Replies to requests not seen cannot be paired with anything.
      if (direction === 'response') {
        this.counters.unpairedResponses++;
        return;
      }
      session = this.decide(flow, chunk);
      if (session === undefined) return;
      this.sessions.set(flow.id, session);
    }
    if (direction === 'request') session.pushRequest(chunk, timestampMicros);
    else session.pushResponse(chunk, timestampMicros);
  }

  gap(flow: Flow, direction: Direction, missingBytes: number): void {
    this.counters.gapBytes += missingBytes;
    const session = this.sessions.get(flow.id);
    if (session === undefined || session === UNDECIDED) {
      this.counters.gaps++;
      return;
    }
    session.gap(direction === 'request', missingBytes);
  }

  close(flow: Flow, reason: CloseReason): void {
    const session = this.sessions.get(flow.id);
    this.sessions.delete(flow.id);
    if (session !== undefined && session !== UNDECIDED) session.close(reason);
  }

  /**
   * memcached decides a connection's protocol by its first byte (0x80:
   * binary, else ASCII). A mid-stream flow's first byte may be inside a
   * message, so it looks for a binary header first, then a command line.
   */
  private decide(flow: Flow, chunk: Buffer): AnySession | undefined {
    let binary = chunk[0] === B.BINARY_REQUEST;
    if (flow.midstream) {
      // Whichever plausible start comes first: a value's bytes may look like either.
      const binaryAt = huntBinary(chunk, 0, B.BINARY_REQUEST, this.ctx.limits);
      const textAt = firstTextRequest(chunk);
      if (binaryAt < 0 && textAt < 0) return undefined; // no message start yet: wait for more
      binary = binaryAt >= 0 && (textAt < 0 || binaryAt < textAt);
    }
    if (binary) {
      this.counters.binaryFlows++;
      return new BinarySession(this.ctx, flow.id, flow.midstream) as unknown as AnySession;
    }
    this.counters.textFlows++;
    return new AsciiSession(this.ctx, flow.id, flow.midstream) as unknown as AnySession;
  }
}

/** An observer must stay in step whatever it cannot hold: over-limit values are skipped by their length. */
function observing(limits: Limits): Limits {
  return limits.skipOversizeValues === true ? limits : Object.freeze({ ...limits, skipOversizeValues: true });
}
