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
  BinaryOpcode,
  BinaryRequestParser,
  BinaryResponseParser,
  loudOf,
  type BinaryRequest,
  type BinaryResponse,
} from '../protocol/binary.js';
import { B } from '../protocol/bytes.js';
import {
  BINARY_ADMIN,
  BINARY_NO_REPLY,
  binaryReplyOutcome,
  binaryRequestValue,
  describeBinary,
} from './binary-meaning.js';
import { PendingRequest, type ReplyOutcome } from './pending.js';
import { huntBinary } from './resync.js';
import { LOOKAHEAD, PairingSession, type SessionContext } from './session.js';

export class BinarySession extends PairingSession<BinaryRequest, BinaryResponse> {
  private readonly reply: ReplyOutcome = {
    outcome: 'unknown',
    value: undefined,
    flags: undefined,
    number: undefined,
  };

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
    const p = new PendingRequest();
    p.timestampMicros = this.now;
    const shape = describeBinary(req, p);
    if ((shape & BINARY_ADMIN) !== 0) this.ctx.counters.adminCommands++;
    if ((shape & BINARY_NO_REPLY) !== 0) return; // QuitQ: no reply, the connection closes
    const value = binaryRequestValue(req, p);
    if (value !== undefined) this.takeValue(p, value);
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
    const out = this.reply;
    binaryReplyOutcome(p, res, out);
    this.finish(p, out.outcome, out.value, out.flags, out.number);
  }
}

function owns(p: PendingRequest, loud: number, res: BinaryResponse): boolean {
  return (
    p.opcode === loud &&
    p.opaque === res.opaque &&
    (!p.returnsKey || res.key.length === 0 || p.key.equals(res.key))
  );
}
