/**
 * ops/'s input for requests already paired with their replies, beside
 * capture's OperationExtractor (extractor.ts), which must read both
 * directions of a connection to pair them. The proxy sends each request and
 * reads its reply itself: it hands the parsed request and reply over here,
 * and they mean what they mean to capture (ascii-meaning.ts,
 * binary-meaning.ts), with nothing parsed twice and nothing to wait for.
 *
 * Each call hands its operations to the sink at once, so they reach the
 * replay in the order the caller saw the replies (memcached answers a
 * connection in order, which keeps per-key order). Keys and values are
 * copied: the caller's buffers are views of its socket chunks.
 */
import type { AsciiRequest, AsciiResponse, RetrievalRequest } from '../protocol/ascii-frames.js';
import type { BinaryRequest, BinaryResponse } from '../protocol/binary.js';
import { SKIPPED_VALUE } from '../protocol/lines.js';
import {
  ADMIN,
  asciiReplyOutcome,
  asciiRequestValue,
  classify,
  describeAscii,
  QUIT,
} from './ascii-meaning.js';
import {
  BINARY_ADMIN,
  BINARY_NO_REPLY,
  binaryReplyOutcome,
  binaryRequestValue,
  describeBinary,
} from './binary-meaning.js';
import type { OpOutcome, Operation } from './operation.js';
import { PendingRequest, type ReplyOutcome } from './pending.js';
import { zeroOperationCounters, type OperationCounters } from './session.js';

export class PairedOperations {
  readonly counters: OperationCounters = zeroOperationCounters();
  private readonly sink: (op: Operation) => void;
  private readonly out: ReplyOutcome = {
    outcome: 'unknown',
    value: undefined,
    flags: undefined,
    number: undefined,
  };

  constructor(sink: (op: Operation) => void) {
    this.sink = sink;
  }

  /** A text or meta request (not a retrieval) and the one reply frame its server sent. */
  text(req: AsciiRequest, reply: AsciiResponse, connection: number, micros: number): void {
    const p = this.describeText(req, micros);
    if (p === undefined) return;
    this.counters.responses++;
    const out = this.out;
    asciiReplyOutcome(p, reply, classify(reply), out);
    this.emit(p, p.key, out.outcome, out.value, out.flags, out.number, connection);
  }

  /**
   * A text retrieval and its server's reply: the VALUE frames (in the order
   * the keys were asked, misses left out), then END or the error that ended it.
   */
  textRead(
    req: RetrievalRequest,
    replies: readonly AsciiResponse[],
    connection: number,
    micros: number,
  ): void {
    const p = this.describeText(req, micros);
    if (p === undefined || p.keys === undefined) return;
    const c = this.counters;
    c.responses += replies.length;
    const keys = p.keys;
    const last = replies[replies.length - 1];
    if (last === undefined || last.kind !== 'end') {
      // An error in place of the reply (or a reply cut short): the source changed nothing it said.
      for (const key of keys) {
        if (last?.kind === 'error') this.emit(p, key, 'error', undefined, undefined, undefined, connection);
        else this.lostKey(p, key, connection);
      }
      return;
    }
    let next = 0;
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k]!;
      const hit = replies[next];
      if (hit !== undefined && hit.kind === 'value' && key.equals(hit.key)) {
        next++;
        const value = hit.value === SKIPPED_VALUE ? undefined : Buffer.from(hit.value);
        this.emit(p, key, 'hit', value, value === undefined ? undefined : hit.flags, undefined, connection);
      } else {
        this.emit(p, key, 'miss', undefined, undefined, undefined, connection);
      }
    }
  }

  /** A quiet request sent with a fence after it, which got nothing back before the fence: it succeeded silently. */
  textQuiet(req: AsciiRequest, connection: number, micros: number): void {
    const p = this.describeText(req, micros);
    if (p === undefined) return;
    this.emit(p, p.key, p.silentOutcome, p.value, p.flags, undefined, connection);
  }

  /** A text or meta request whose reply will not come (the connection failed, or it timed out). */
  textLost(req: AsciiRequest, connection: number, micros: number): void {
    const p = this.describeText(req, micros);
    if (p !== undefined) this.lost(p, connection);
  }

  /** A binary request and its server's reply. */
  binary(req: BinaryRequest, reply: BinaryResponse, connection: number, micros: number): void {
    const p = this.describeBinary(req, micros);
    if (p === undefined) return;
    this.counters.responses++;
    const out = this.out;
    binaryReplyOutcome(p, reply, out);
    this.emit(p, p.key, out.outcome, out.value, out.flags, out.number, connection);
  }

  /** A binary request whose reply will not come. */
  binaryLost(req: BinaryRequest, connection: number, micros: number): void {
    const p = this.describeBinary(req, micros);
    if (p !== undefined) this.lost(p, connection);
  }

  private describeText(req: AsciiRequest, micros: number): PendingRequest | undefined {
    const c = this.counters;
    c.requests++;
    const p = new PendingRequest();
    p.timestampMicros = micros;
    const shape = describeAscii(req, p);
    if ((shape & (ADMIN | QUIT)) !== 0) c.adminCommands++;
    if ((shape & QUIT) !== 0 || p.command === 'other') return undefined; // paired, never mirrored
    const value = asciiRequestValue(req);
    if (value !== undefined) p.value = Buffer.from(value);
    return p;
  }

  private describeBinary(req: BinaryRequest, micros: number): PendingRequest | undefined {
    const c = this.counters;
    c.requests++;
    const p = new PendingRequest();
    p.timestampMicros = micros;
    const shape = describeBinary(req, p);
    if ((shape & BINARY_ADMIN) !== 0) c.adminCommands++;
    if ((shape & BINARY_NO_REPLY) !== 0 || p.command === 'other') return undefined;
    const value = binaryRequestValue(req, p);
    if (value !== undefined) p.value = Buffer.from(value);
    return p;
  }

  /**
   * No reply to learn from: a mutation is reported 'unknown' without its
   * value, so the target loses the key (the source may or may not have
   * applied it: a miss, never data the source does not hold); reads report nothing.
   */
  private lost(p: PendingRequest, connection: number): void {
    if (p.keys === undefined) {
      this.lostKey(p, p.key, connection);
      return;
    }
    for (const key of p.keys) this.lostKey(p, key, connection);
  }

  private lostKey(p: PendingRequest, key: Buffer, connection: number): void {
    if (p.command === 'get') this.counters.droppedReads++;
    else this.emit(p, key, 'unknown', undefined, undefined, undefined, connection);
  }

  private emit(
    p: PendingRequest,
    key: Buffer,
    outcome: OpOutcome,
    value: Buffer | undefined,
    flags: number | undefined,
    number: bigint | undefined,
    connection: number,
  ): void {
    const c = this.counters;
    c.operations++;
    c.commands[p.command]++;
    if (outcome === 'unknown') c.unknownOutcomes++;
    this.sink({
      command: p.command,
      key,
      value,
      flags,
      exptime: p.exptime,
      delta: p.delta,
      initial: p.initial,
      oversize: p.oversize,
      number,
      outcome,
      protocol: p.protocol,
      connection,
      timestampMicros: p.timestampMicros,
      name: p.name,
    });
  }
}
