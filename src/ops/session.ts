/**
 * What pairing does the same way for every protocol: feeding each direction
 * of one connection to its parser, hunting for a message start after a gap,
 * garbage or a mid-stream join, keeping requests in a bounded FIFO, and
 * turning a request and what its reply said into an Operation.
 *
 * Being out of step. After a gap, a parse error, a full queue or a
 * mid-stream join, replies may belong to requests memshift never saw (or the
 * other way round). The flow is then `desynced`: what was pending is reported
 * at once (mutations as 'unknown', so the target forgets the key; reads
 * dropped), and requests queued while desynced are `unsure`: paired in order
 * as usual, but reported the same cautious way. The flow is back in step
 * when a reply is paired by identity (a meta opaque or returned key, a text
 * VALUE key, a binary key or unique opaque) or when it has been idle
 * (nothing pending, no reply for `settleMicros`), since then every reply
 * owed has arrived.
 */
import type { CloseReason } from '../capture/tcp-reassembly.js';
import { FrameDecoder, NO_ROOM_FOR_HEAD, type FrameParser } from '../protocol/decoder.js';
import { ProtocolError } from '../protocol/errors.js';
import type { Limits } from '../protocol/limits.js';
import { SKIPPED_VALUE } from '../protocol/lines.js';
import type { ByteBudget } from './budget.js';
import type { HoldOwner, QuietHold } from './held.js';
import type { OpCommand, OpOutcome, Operation } from './operation.js';
import { PendingQueue, PendingRequest } from './pending.js';

export interface OperationCounters {
  /** Connections seen, and of those, joined mid-stream. */
  flows: number;
  midstreamFlows: number;
  textFlows: number;
  binaryFlows: number;
  /** Request frames parsed (a multi-get counts once). */
  requests: number;
  /** Reply frames parsed (each VALUE, END, STAT line or binary packet counts). */
  responses: number;
  /** Operations handed to the sink, in all and per command. */
  operations: number;
  commands: Record<OpCommand, number>;
  /** Operations handed on with outcome 'unknown'. */
  unknownOutcomes: number;
  /** Replies with no request they could answer (nothing pending, or no match). */
  unpairedResponses: number;
  /** Replies the oldest pending request could not have produced: the flow was out of step. */
  mismatchedResponses: number;
  /** Times a flow direction hunted for the next message start (after gaps, garbage, mid-stream joins). */
  resyncs: number;
  gaps: number;
  gapBytes: number;
  /** Gaps that fell inside a data block of known length: skipped by it, the flow stayed in step. */
  gapsInValues: number;
  /** Storage requests whose value was over the value limit: skipped by its length, the key invalidated. */
  oversizeValues: number;
  /** Values not kept while awaiting their reply, the pending byte budget being spent: the key is invalidated. */
  shedValues: number;
  /**
   * Data blocks not held while they arrived (request values and read replies),
   * the pending byte budget being spent: skipped by their declared length; a
   * write's key is invalidated, a read fills nothing.
   */
  shedPartialValues: number;
  /** Incomplete lines or headers the pending byte budget had no room for: that direction of the flow resyncs. */
  shedLines: number;
  /** Malformed bytes (each one poisons that direction until the next message start). */
  protocolErrors: number;
  /** Requests given up because the flow's pending queue was full (mutations reported 'unknown'). */
  pendingDropped: number;
  /** Reads not reported because their reply could not be trusted to be theirs. */
  droppedReads: number;
  /** stats, version, verbosity, lru_crawler, watch, quit, me, binary Stat/Version/Noop...: paired, never mirrored. */
  adminCommands: number;
  heldExpired: number;
  heldOvertaken: number;
  heldContested: number;
  heldRevoked: number;
}

export function zeroOperationCounters(): OperationCounters {
  return {
    flows: 0,
    midstreamFlows: 0,
    textFlows: 0,
    binaryFlows: 0,
    requests: 0,
    responses: 0,
    operations: 0,
    commands: {
      set: 0,
      add: 0,
      replace: 0,
      append: 0,
      prepend: 0,
      cas: 0,
      get: 0,
      gat: 0,
      touch: 0,
      delete: 0,
      incr: 0,
      decr: 0,
      flush_all: 0,
      other: 0,
    },
    unknownOutcomes: 0,
    unpairedResponses: 0,
    mismatchedResponses: 0,
    resyncs: 0,
    gaps: 0,
    gapBytes: 0,
    gapsInValues: 0,
    protocolErrors: 0,
    oversizeValues: 0,
    shedValues: 0,
    shedPartialValues: 0,
    shedLines: 0,
    pendingDropped: 0,
    droppedReads: 0,
    adminCommands: 0,
    heldExpired: 0,
    heldOvertaken: 0,
    heldContested: 0,
    heldRevoked: 0,
  };
}

/** What the sessions of one extractor share. */
export interface SessionContext {
  readonly sink: (op: Operation) => void;
  readonly counters: OperationCounters;
  readonly limits: Limits;
  readonly maxPending: number;
  readonly settleMicros: number;
  /** Quiet mutations of every session of the extractor, reported in time and in key order. */
  readonly hold: QuietHold;
  /**
   * Bytes that requests awaiting replies, multi-get values awaiting their END
   * and frames still arriving may hold, over every flow.
   */
  readonly pendingBytes: ByteBudget;
}

/** Bytes kept from the end of a chunk while hunting, so a message start split across chunks is still found. */
const HUNT_CARRY = 32;

/** How far past the head pairing looks for a reply's owner by opaque or key. */
export const LOOKAHEAD = 64;

export abstract class PairingSession<Req, Res> implements HoldOwner {
  protected readonly ctx: SessionContext;
  protected readonly queue = new PendingQueue();
  readonly connection: number;
  protected desynced: boolean;
  /**
   * False from a request-side hunt (a gap, garbage, a mid-stream join) until
   * the flow is back in step: a request read meanwhile may be a value's
   * bytes that merely look like a command.
   */
  private requestsTrusted: boolean;
  /**
   * Text noreply requests already reported, older than the head of the queue:
   * an error reply may still come for any of them.
   */
  protected noreplyAhead = 0;
  /** Timestamp of the request chunk being parsed. */
  protected now = 0;
  private lastResponseMicros = 0;
  /** Capture time of the request chunk before the one being parsed. */
  private lastRequestMicros = 0;
  private readonly requests: FrameDecoder<Req>;
  private readonly responses: FrameDecoder<Res>;
  private requestHunt: boolean;
  private responseHunt: boolean;
  private requestCarry: Buffer | undefined;
  private responseCarry: Buffer | undefined;
  private readonly onRequestFrame: (frame: Req) => void;
  private readonly onResponseFrame: (frame: Res) => void;
  /** A request whose value was lost: queued while out of step, never a reason to settle. */
  private readonly onLostRequest: (frame: Req) => void;

  constructor(
    ctx: SessionContext,
    connection: number,
    requestParser: FrameParser<Req>,
    responseParser: FrameParser<Res>,
    midstream: boolean,
  ) {
    this.ctx = ctx;
    this.connection = connection;
    this.requests = new FrameDecoder(requestParser, ctx.pendingBytes);
    this.responses = new FrameDecoder(responseParser, ctx.pendingBytes);
    this.desynced = midstream;
    this.requestsTrusted = !midstream;
    this.requestHunt = midstream;
    this.responseHunt = midstream;
    this.onRequestFrame = (frame) => {
      this.ctx.counters.requests++;
      if (this.requests.shedFrame) this.ctx.counters.shedPartialValues++;
      this.settleIfIdle();
      this.request(frame);
    };
    this.onLostRequest = (frame) => {
      this.ctx.counters.requests++;
      this.request(frame);
    };
    this.onResponseFrame = (frame) => {
      this.ctx.counters.responses++;
      if (this.responses.shedFrame) this.ctx.counters.shedPartialValues++;
      this.response(frame);
    };
  }

  /** Handles one request frame (views valid only during the call). */
  protected abstract request(frame: Req): void;
  /** Handles one reply frame (views valid only during the call). */
  protected abstract response(frame: Res): void;
  /** Offset of the first plausible request start in `buf` at or after `from`, or -1. */
  protected abstract huntRequest(buf: Buffer, from: number): number;
  protected abstract huntResponse(buf: Buffer, from: number): number;

  pushRequest(chunk: Buffer, timestampMicros: number): void {
    this.now = timestampMicros;
    let buf: Buffer | undefined = chunk;
    if (this.requestHunt) buf = this.hunt(chunk, true);
    if (buf !== undefined) this.feed(buf, true);
    this.lastRequestMicros = timestampMicros;
  }

  pushResponse(chunk: Buffer, timestampMicros: number): void {
    this.lastResponseMicros = timestampMicros;
    let buf: Buffer | undefined = chunk;
    if (this.responseHunt) {
      buf = this.hunt(chunk, false);
      if (buf === undefined) return;
    }
    this.feed(buf, false);
  }

  /**
   * `missingBytes` of one direction were lost. Inside a data block of known
   * length the flow stays in step: the block is skipped by that length and
   * its frame reported without it (a write's key is invalidated, a read fills
   * nothing). Otherwise what is pending can no longer be paired, and that
   * direction hunts.
   */
  gap(isRequest: boolean, missingBytes: number): void {
    this.ctx.counters.gaps++;
    const skipped = isRequest
      ? !this.requestHunt && this.requests.skipLost(missingBytes, this.onRequestFrame)
      : !this.responseHunt && this.responses.skipLost(missingBytes, this.onResponseFrame);
    if (skipped) this.ctx.counters.gapsInValues++;
    else this.outOfStep(isRequest);
  }

  /** The connection ended: quiet requests had their silent outcome only if every reply was seen (both FINs). */
  close(reason: CloseReason): void {
    const complete = reason === 'fin' && !this.responseHunt && this.responses.buffered === 0;
    for (let p = this.queue.shift(); p !== undefined; p = this.queue.shift()) {
      if (p.noreply) this.giveUp(p);
      else if (complete && p.silent && !p.unsure) this.finish(p, p.silentOutcome);
      else this.giveUp(p);
    }
    // What the decoders held of frames that never completed goes back to the budget.
    this.requests.reset();
    this.responses.reset();
  }

  // ---- for the protocol sessions ----

  /** Queues a request that expects a reply (or may be answered silently). */
  protected enqueue(p: PendingRequest): void {
    // Quiet writes of other connections to this key reach the target before this request.
    if (p.keys === undefined && this.ctx.hold.overtake(p.key, this.connection)) p.contested = true;
    if (this.queue.length >= this.ctx.maxPending) {
      // The server is not answering, or its replies are not being seen: give up on everything pending.
      this.ctx.counters.pendingDropped += this.queue.length;
      this.flushPending();
      this.desynced = true;
    }
    if (p.value !== undefined && p.value.length > 0) {
      if (this.ctx.pendingBytes.take(p.value.length)) p.charged = p.value.length;
      else {
        // No room to keep it until its reply: its key is invalidated instead of written.
        p.value = undefined;
        p.shed = true;
        this.ctx.counters.shedValues++;
      }
    }
    if (this.desynced) p.unsure = true;
    if (!this.requestsTrusted) p.hunted = true;
    if (p.noreply && this.queue.length === 0) {
      this.giveUp(p);
      this.ctx.hold.holdReported(p, this);
      this.noreplyAhead++;
      return;
    }
    this.queue.push(p);
    this.ctx.hold.hold(p, this);
  }

  /** Reports a held quiet request before its reply can tell its outcome (see held.ts). */
  reportEarly(p: PendingRequest, outcome: OpOutcome): void {
    p.reported = outcome;
    // 'unknown' carries no value: the key is deleted on the target, whatever the command.
    this.emit(p, p.key, outcome, p.hunted || outcome === 'unknown' ? undefined : p.value, p.flags, undefined);
  }

  /** Removes the head (its reply has been seen), then reports the noreply requests that follow it. */
  protected shiftHead(): void {
    this.queue.shift();
    for (let p = this.queue.peek(); p !== undefined && p.noreply; p = this.queue.peek()) {
      this.queue.shift();
      this.giveUp(p);
      this.ctx.hold.holdReported(p, this);
      this.noreplyAhead++;
    }
  }

  /** Keeps a request's value: a copy, or nothing when it was skipped for being over the limit. */
  protected takeValue(p: PendingRequest, value: Buffer): void {
    if (value === SKIPPED_VALUE) {
      p.value = undefined;
      if (this.requests.shedFrame) p.shed = true;
      else if (this.requests.lostFrame) {
        // Part of it was lost in a gap: the key is invalidated as of unknown content.
      } else {
        p.oversize = true;
        this.ctx.counters.oversizeValues++;
      }
    } else {
      p.value = Buffer.from(value);
    }
  }

  /** Reports `p` with `outcome` (cautiously when it is unsure). */
  protected finish(
    p: PendingRequest,
    outcome: OpOutcome,
    value: Buffer | undefined = p.value,
    flags: number | undefined = p.flags,
    number: bigint | undefined = undefined,
  ): void {
    if (p.command === 'other') return this.release(p); // admin commands and fences are paired, never mirrored
    if (p.held || p.tracked) this.ctx.hold.settled(p);
    if (p.reported !== undefined) return this.lateOutcome(p, outcome);
    if (p.unsure) {
      this.giveUp(p);
      return;
    }
    this.emit(p, p.key, outcome, value, flags, number);
  }

  /**
   * The real outcome of a request reported early. Only an early 'stored' for a
   * set can be wrong in a way that matters (the source refused or failed the
   * set, and unlinked the old item): the target loses the key. An early
   * 'unknown' already deleted it; a delete deletes whatever it answered.
   */
  private lateOutcome(p: PendingRequest, outcome: OpOutcome): void {
    if (p.reported === outcome || p.reported === 'unknown' || p.command !== 'set' || p.unsure) return;
    this.ctx.counters.heldRevoked++;
    this.invalidate(p, 'revoked');
  }

  /** Deletes `p`'s key on the target after what was reported for it (`why` names the reason). */
  private invalidate(p: PendingRequest, why: 'revoked' | 'contested'): void {
    const c = this.ctx.counters;
    c.operations++;
    c.commands.delete++;
    this.ctx.sink({
      command: 'delete',
      key: p.key,
      value: undefined,
      flags: undefined,
      exptime: undefined,
      delta: undefined,
      number: undefined,
      outcome: 'unknown',
      protocol: p.protocol,
      connection: this.connection,
      timestampMicros: p.timestampMicros,
      name: why,
    });
  }

  /** Marks queued requests unsure, from `i` up to and including the next one that is not silent. */
  protected markUnsureThroughLoud(i: number): void {
    for (let j = i; ; j++) {
      const q = this.queue.at(j);
      if (q === undefined) return;
      q.unsure = true;
      if (!q.silent) return;
    }
  }

  /** Removes the `n` requests before the reply's owner: silent ones had their silent outcome. */
  protected passOver(n: number): void {
    for (let k = 0; k < n; k++) {
      const q = this.queue.shift()!;
      if (q.silent) this.finish(q, q.silentOutcome);
      else {
        this.ctx.counters.mismatchedResponses++;
        this.giveUp(q);
      }
    }
  }

  /** Reports `p` without a trustworthy reply: mutations as 'unknown', reads not at all. */
  protected giveUp(p: PendingRequest): void {
    if (p.command === 'other') return this.release(p);
    if (p.held || p.tracked) this.ctx.hold.settled(p);
    // Reported early: 'unknown' now asks nothing more of the target than what it was told then.
    if (p.reported !== undefined) return this.release(p);
    if (p.command === 'get') {
      this.ctx.counters.droppedReads += p.keys?.length ?? 1;
      return this.release(p);
    }
    if (p.keys !== undefined) {
      for (const key of p.keys) this.emit(p, key, 'unknown', undefined, undefined, undefined);
    } else {
      // A request read while hunting may have been a value's bytes: its key may be lost on the
      // target, never written with what it carries.
      this.emit(p, p.key, 'unknown', p.hunted ? undefined : p.value, p.flags, undefined);
    }
  }

  protected emit(
    p: PendingRequest,
    key: Buffer,
    outcome: OpOutcome,
    value: Buffer | undefined,
    flags: number | undefined,
    number: bigint | undefined,
  ): void {
    this.release(p);
    const c = this.ctx.counters;
    if (p.contested && (p.command === 'get' || p.command === 'gat')) {
      // Its value may predate or follow the contested write: nothing to fill from it.
      c.droppedReads++;
      return;
    }
    c.operations++;
    c.commands[p.command]++;
    if (outcome === 'unknown') c.unknownOutcomes++;
    this.ctx.sink({
      command: p.command,
      key,
      value,
      flags,
      exptime: p.exptime,
      delta: p.delta,
      initial: p.initial,
      oversize: p.oversize,
      shed: p.shed,
      number,
      outcome,
      protocol: p.protocol,
      connection: this.connection,
      timestampMicros: p.timestampMicros,
      name: p.name,
    });
    // Contested: whichever write the source applied last, the target must not guess.
    if (p.contested) this.invalidate(p, 'contested');
  }

  /** Gives back the pending budget's bytes `p` holds (its value, multi-get values read for it). */
  protected release(p: PendingRequest): void {
    if (p.charged > 0) {
      this.ctx.pendingBytes.give(p.charged);
      p.charged = 0;
    }
  }

  /** A reply proved which request it answers: requests queued after that one are in step. */
  protected inStep(from: number): void {
    if (!this.desynced) return;
    this.desynced = false;
    this.requestsTrusted = true;
    for (let i = from; i < this.queue.length; i++) this.queue.at(i)!.unsure = false;
  }

  /** The replies and the queue disagree: report what is pending cautiously and wait to be in step again. */
  protected mismatch(): void {
    this.ctx.counters.mismatchedResponses++;
    this.desynced = true;
    for (let i = 0; i < this.queue.length; i++) this.queue.at(i)!.unsure = true;
  }

  protected unpaired(): void {
    this.ctx.counters.unpairedResponses++;
  }

  private flushPending(): void {
    for (let p = this.queue.shift(); p !== undefined; p = this.queue.shift()) this.giveUp(p);
    this.noreplyAhead = 0;
  }

  private outOfStep(isRequest: boolean): void {
    this.ctx.counters.resyncs++;
    this.flushPending();
    this.desynced = true;
    // A request partway through its value when its place was lost: the source may have stored it
    // whole, so its key is invalidated (queued unsure, after everything given up above).
    if (isRequest) this.requests.dropHeld(this.onLostRequest);
    if (isRequest) {
      this.requestHunt = true;
      this.requestsTrusted = false;
      this.requestCarry = undefined;
      this.requests.reset();
    } else {
      this.responseHunt = true;
      this.responseCarry = undefined;
      this.responses.reset();
    }
  }

  /**
   * Nothing pending and no reply for a while, the last reply sent after the
   * client's last bytes: every reply owed has been seen, and the server had
   * read a whole request when it last answered. (A client that paused in the
   * middle of a value got no reply meanwhile: the bytes it sends next are
   * still that value's, whatever they look like.)
   */
  private settleIfIdle(): void {
    if (
      this.desynced &&
      this.queue.length === 0 &&
      !this.responseHunt &&
      this.responses.buffered === 0 &&
      this.lastResponseMicros >= this.lastRequestMicros &&
      this.now - this.lastResponseMicros >= this.ctx.settleMicros
    ) {
      this.desynced = false;
      this.requestsTrusted = true;
    }
  }

  /** The part of `chunk` from the first plausible message start, or undefined (keeping a short tail). */
  private hunt(chunk: Buffer, isRequest: boolean): Buffer | undefined {
    const carry = isRequest ? this.requestCarry : this.responseCarry;
    const buf = carry === undefined ? chunk : Buffer.concat([carry, chunk]);
    const at = isRequest ? this.huntRequest(buf, 0) : this.huntResponse(buf, 0);
    if (at < 0) {
      const tail = buf.length > HUNT_CARRY ? buf.subarray(buf.length - HUNT_CARRY) : buf;
      const kept = Buffer.from(tail);
      if (isRequest) this.requestCarry = kept;
      else this.responseCarry = kept;
      return undefined;
    }
    if (isRequest) {
      this.requestHunt = false;
      this.requestCarry = undefined;
    } else {
      this.responseHunt = false;
      this.responseCarry = undefined;
    }
    return at === 0 ? buf : buf.subarray(at);
  }

  private feed(buf: Buffer, isRequest: boolean): void {
    const decoder: FrameDecoder<Req> | FrameDecoder<Res> = isRequest ? this.requests : this.responses;
    const base = decoder.offset + decoder.buffered;
    try {
      if (isRequest) this.requests.push(buf, this.onRequestFrame);
      else this.responses.push(buf, this.onResponseFrame);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      if (err.reason === NO_ROOM_FOR_HEAD) this.ctx.counters.shedLines++;
      else this.ctx.counters.protocolErrors++;
      this.outOfStep(isRequest);
      // Hunt again in what follows the bad byte (frames before it were handled).
      const from = Math.max(0, err.offset - base + 1);
      if (from < buf.length) {
        const rest = buf.subarray(from);
        const at = isRequest ? this.huntRequest(rest, 1) : this.huntResponse(rest, 1);
        if (at >= 0) {
          if (isRequest) this.requestHunt = false;
          else this.responseHunt = false;
          this.feed(rest.subarray(at), isRequest);
        } else {
          const tail = Buffer.from(rest.subarray(Math.max(0, rest.length - HUNT_CARRY)));
          if (isRequest) this.requestCarry = tail;
          else this.responseCarry = tail;
        }
      }
    }
  }
}
