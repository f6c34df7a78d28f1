/**
 * Pairing on a binary connection (reference/memcached-protocol-binary.txt).
 * A reply names its request's opcode and echoes its opaque (section 2), and
 * memcached answers in request order, so a reply goes to the oldest pending
 * request with the same opcode and opaque (and key, for GetK). Quiet requests
 * passed over had their silent outcome (section 3.3: a quiet get's miss, a
 * quiet mutation's success, are not sent); a loud one passed over lost its
 * reply.
 */
import {
  binaryArithmeticDelta,
  binaryArithmeticExpiration,
  binaryArithmeticInitial,
  BINARY_NO_AUTO_CREATE,
  binaryCounterValue,
  binaryFlushExpiration,
  BinaryOpcode,
  binaryResponseFlags,
  BinaryStatus,
  binaryStoreExpiration,
  binaryStoreFlags,
  binaryTouchExpiration,
  isQuiet,
  loudOf,
  type BinaryRequest,
  type BinaryResponse,
} from '../protocol/binary.js';
import { BinaryRequestParser, BinaryResponseParser } from '../protocol/binary.js';
import { B } from '../protocol/bytes.js';
import { SKIPPED_VALUE } from '../protocol/lines.js';
import type { OpOutcome } from './operation.js';
import { PendingRequest } from './pending.js';
import { huntBinary } from './resync.js';
import { LOOKAHEAD, PairingSession, type SessionContext } from './session.js';

export class BinarySession extends PairingSession<BinaryRequest, BinaryResponse> {
  constructor(ctx: SessionContext, connection: number, midstream: boolean) {
    super(
      ctx,
      connection,
      new BinaryRequestParser(ctx.limits),
      new BinaryResponseParser(ctx.limits),
      midstream,
    );
  }

  protected huntRequest(buf: Buffer, from: number): number {
    return huntBinary(buf, from, B.BINARY_REQUEST, this.ctx.limits);
  }

  protected huntResponse(buf: Buffer, from: number): number {
    return huntBinary(buf, from, B.BINARY_RESPONSE, this.ctx.limits);
  }

  protected request(req: BinaryRequest): void {
    const loud = loudOf(req.opcode);
    const p = new PendingRequest();
    p.protocol = 'binary';
    p.timestampMicros = this.now;
    p.opcode = loud;
    p.opaque = req.opaque;
    p.silent = isQuiet(req.opcode);
    p.cas = req.cas !== 0n;
    switch (loud) {
      case BinaryOpcode.Get:
      case BinaryOpcode.GetK:
        p.command = 'get';
        p.key = Buffer.from(req.key);
        p.returnsKey = loud === BinaryOpcode.GetK;
        p.silentOutcome = 'miss';
        break;
      case BinaryOpcode.GAT:
      case BinaryOpcode.GATK:
        p.command = 'gat';
        p.key = Buffer.from(req.key);
        p.exptime = binaryTouchExpiration(req);
        p.returnsKey = loud === BinaryOpcode.GATK;
        p.silentOutcome = 'miss';
        break;
      case BinaryOpcode.Set:
      case BinaryOpcode.Add:
      case BinaryOpcode.Replace:
        // A store with a CAS is a compare-and-swap (section 4.3); memcached ignores it on Add.
        p.command =
          p.cas && loud !== BinaryOpcode.Add
            ? 'cas'
            : loud === BinaryOpcode.Set
              ? 'set'
              : loud === BinaryOpcode.Add
                ? 'add'
                : 'replace';
        p.key = Buffer.from(req.key);
        this.takeValue(p, req.value);
        p.flags = binaryStoreFlags(req);
        p.exptime = binaryStoreExpiration(req);
        p.silentOutcome = 'stored';
        break;
      case BinaryOpcode.Append:
      case BinaryOpcode.Prepend:
        p.command = loud === BinaryOpcode.Append ? 'append' : 'prepend';
        p.key = Buffer.from(req.key);
        this.takeValue(p, req.value);
        p.silentOutcome = 'stored';
        break;
      case BinaryOpcode.Delete:
        p.command = 'delete';
        p.key = Buffer.from(req.key);
        p.silentOutcome = 'deleted';
        break;
      case BinaryOpcode.Increment:
      case BinaryOpcode.Decrement:
        p.command = loud === BinaryOpcode.Increment ? 'incr' : 'decr';
        p.key = Buffer.from(req.key);
        p.delta = binaryArithmeticDelta(req);
        {
          // Any expiration but the all-ones one creates a missing counter at `initial` (section 4.5).
          const expiration = binaryArithmeticExpiration(req);
          if (expiration !== undefined && expiration !== BINARY_NO_AUTO_CREATE) {
            p.initial = binaryArithmeticInitial(req);
            p.exptime = expiration;
          }
        }
        p.silentOutcome = 'number'; // a quiet success does not send the new value
        break;
      case BinaryOpcode.Touch:
        p.command = 'touch';
        p.key = Buffer.from(req.key);
        p.exptime = binaryTouchExpiration(req);
        p.silentOutcome = 'touched';
        break;
      case BinaryOpcode.Flush:
        p.command = 'flush_all';
        p.exptime = binaryFlushExpiration(req);
        p.silentOutcome = 'ok';
        break;
      case BinaryOpcode.Noop:
        p.name = 'noop'; // a fence: it exists to end quiet pipelines
        break;
      default:
        // Version, Stat, Verbosity, Quit, SASL, opcodes memcached does not know: paired, not mirrored.
        this.ctx.counters.adminCommands++;
        p.name = 'binary';
        if (loud === BinaryOpcode.Quit && p.silent) return; // QuitQ: no reply, the connection closes
        p.silentOutcome = 'ok';
    }
    this.enqueue(p);
  }

  protected response(res: BinaryResponse): void {
    const loud = loudOf(res.opcode);
    // The whole queue: a hit may follow a long run of quiet misses.
    const n = this.queue.length;
    for (let i = 0; i < n; i++) {
      const p = this.queue.at(i)!;
      if (!owns(p, loud, res)) continue;
      // The reply names its request by key, or by an opaque clients make unique.
      const named = (p.returnsKey && res.key.length > 0) || res.opaque !== 0;
      if (p.silent && !named && this.ambiguous(i, loud, res)) this.markUnsureThroughLoud(i);
      this.passOver(i);
      if (named) {
        this.inStep(1);
        p.unsure = false;
      }
      if (loud === BinaryOpcode.Stat && res.key.length > 0) return; // more stats follow; an empty key ends them
      this.queue.shift();
      return this.outcome(p, res);
    }
    // No pending request sent this: its request was not seen.
    const head = this.queue.peek();
    if (head !== undefined && !head.silent) this.mismatch();
    this.unpaired();
  }

  private ambiguous(i: number, loud: number, res: BinaryResponse): boolean {
    for (let j = i + 1; j < i + LOOKAHEAD; j++) {
      const q = this.queue.at(j);
      if (q === undefined) return false;
      if (owns(q, loud, res)) return true;
      if (!q.silent) return false;
    }
    return true;
  }

  private outcome(p: PendingRequest, res: BinaryResponse): void {
    const status = res.status;
    switch (p.command) {
      case 'get':
      case 'gat':
        if (status === BinaryStatus.NoError) {
          // A value over the limit was skipped unread: a hit whose value is not known.
          const value = res.value === SKIPPED_VALUE ? undefined : Buffer.from(res.value);
          return this.finish(p, 'hit', value, binaryResponseFlags(res));
        }
        return this.finish(p, status === BinaryStatus.KeyNotFound ? 'miss' : 'error', undefined, undefined);
      case 'incr':
      case 'decr':
        if (status === BinaryStatus.NoError) {
          return this.finish(p, 'number', undefined, undefined, binaryCounterValue(res));
        }
        break;
    }
    this.finish(p, statusOutcome(p, status));
  }
}

function owns(p: PendingRequest, loud: number, res: BinaryResponse): boolean {
  return (
    p.opcode === loud &&
    p.opaque === res.opaque &&
    (!p.returnsKey || res.key.length === 0 || p.key.equals(res.key))
  );
}

/** What a status means for each command (memcached sends KeyExists for a refused add, KeyNotFound for a refused replace). */
function statusOutcome(p: PendingRequest, status: number): OpOutcome {
  if (status === BinaryStatus.NoError) {
    switch (p.command) {
      case 'delete':
        return 'deleted';
      case 'touch':
        return 'touched';
      case 'flush_all':
        return 'ok';
      default:
        return 'stored';
    }
  }
  switch (p.command) {
    case 'add':
      if (status === BinaryStatus.KeyExists || status === BinaryStatus.ItemNotStored) return 'not_stored';
      break;
    case 'replace':
      if (status === BinaryStatus.KeyNotFound || status === BinaryStatus.ItemNotStored) return 'not_stored';
      break;
    case 'append':
    case 'prepend':
      if (status === BinaryStatus.ItemNotStored || status === BinaryStatus.KeyNotFound) return 'not_stored';
      if (status === BinaryStatus.KeyExists) return 'exists';
      break;
    case 'set':
      if (status === BinaryStatus.ItemNotStored) return 'not_stored';
      break;
    default:
      if (status === BinaryStatus.KeyExists) return 'exists';
      if (status === BinaryStatus.KeyNotFound) return 'not_found';
      if (status === BinaryStatus.ItemNotStored) return 'not_stored';
  }
  if (status === BinaryStatus.KeyExists) return 'exists';
  if (status === BinaryStatus.KeyNotFound) return 'not_found';
  return 'error';
}
