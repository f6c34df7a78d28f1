/**
 * Pairing on an ASCII connection, where text and meta commands mix
 * (protocol.txt, "Meta Commands"): every reply goes to the oldest pending
 * request that could have produced it.
 *
 * - Replies come in request order. A request whose success is silent (text
 *   `noreply`, meta `q`) and that is passed over by a later request's reply
 *   had that silent outcome; a loud one cannot be passed over.
 * - A reply could belong to several quiet requests (two `mg q` without `O`
 *   or `k`, one VA): those requests are reported cautiously instead of guessed.
 * - Meta replies with an `O` opaque or `k` key are paired by identity.
 * - Text `noreply` requests are reported 'unknown' at once (memshift cannot
 *   know they worked, and the replay's rule for unknown, forgetting the key on
 *   the target, is never wrong); a placeholder stays queued, since memcached
 *   still sends some errors for them, and such an error must not be taken
 *   for the next request's reply.
 */
import type { AsciiRequest, AsciiResponse, MetaResponse } from '../protocol/ascii-frames.js';
import { AsciiRequestParser, AsciiResponseParser } from '../protocol/ascii.js';
import { SKIPPED_VALUE } from '../protocol/lines.js';
import {
  ADMIN,
  asciiReplyOutcome,
  asciiRequestValue,
  classify,
  describeAscii,
  END,
  ERROR,
  flagToken,
  K_CODE,
  LINE,
  ME,
  MN,
  MULTI_LINE,
  NOREPLY,
  O_CODE,
  QUIT,
} from './ascii-meaning.js';
import { isAsciiRequestStart, isAsciiResponseStart } from './resync.js';
import { PendingRequest, type ReplyOutcome } from './pending.js';
import { LOOKAHEAD, PairingSession, type SessionContext } from './session.js';

export class AsciiSession extends PairingSession<AsciiRequest, AsciiResponse> {
  private readonly outcome: ReplyOutcome = {
    outcome: 'unknown',
    value: undefined,
    flags: undefined,
    number: undefined,
  };

  constructor(ctx: SessionContext, connection: number, midstream: boolean) {
    super(
      ctx,
      connection,
      new AsciiRequestParser(ctx.limits),
      new AsciiResponseParser(ctx.limits),
      midstream,
    );
  }

  protected huntRequest(buf: Buffer, from: number): number {
    return huntLines(buf, from, isAsciiRequestStart);
  }

  protected huntResponse(buf: Buffer, from: number): number {
    return huntLines(buf, from, isAsciiResponseStart);
  }

  // ---- requests ----

  protected request(req: AsciiRequest): void {
    const p = new PendingRequest();
    p.timestampMicros = this.now;
    const shape = describeAscii(req, p);
    if ((shape & (ADMIN | QUIT)) !== 0) this.ctx.counters.adminCommands++;
    if ((shape & QUIT) !== 0) return; // no reply: memcached closes the connection
    const value = asciiRequestValue(req);
    if (value !== undefined) this.takeValue(p, value);
    if (p.keys !== undefined) {
      p.values = new Array<Buffer | undefined>(p.keys.length).fill(undefined);
      p.valueFlags = new Array<number>(p.keys.length).fill(0);
    }
    if ((shape & NOREPLY) !== 0) this.noreply(p);
    this.enqueue(p);
  }

  /** A text noreply request: reported 'unknown' in its turn; only an error reply can still be its own. */
  private noreply(p: PendingRequest): void {
    p.noreply = true;
    p.silent = true;
    p.expect = ERROR;
    p.silentOutcome = 'unknown';
  }

  // ---- replies ----

  protected response(res: AsciiResponse): void {
    const bit = classify(res);
    const head = this.queue.peek();
    if (this.noreplyAhead > 0) {
      // CLIENT_ERROR and SERVER_ERROR may answer a noreply request already reported (a value too
      // large, out of memory); a bare ERROR answers an unknown command, never a noreply one.
      if (res.kind === 'error' && res.error !== 'ERROR') {
        this.noreplyAhead--;
        // Unless the head could not have sent it, whose it was cannot be known.
        if (head !== undefined && !head.started && (head.expect & ERROR) !== 0) this.mismatch();
        return;
      }
      this.noreplyAhead = 0;
    }
    if (head === undefined) return this.unpaired();
    if (head.started) return this.more(head, res, bit);
    if (res.kind === 'meta' && (bit & (MN | ME)) === 0) {
      const opaque = flagToken(res.flags, O_CODE);
      const key = flagToken(res.flags, K_CODE);
      if (opaque !== undefined || key !== undefined) return this.byIdentity(res, bit, opaque, key);
    }
    for (let i = 0; ; i++) {
      const p = this.queue.at(i);
      if (p === undefined) {
        // Nothing pending could have sent this: a reply to a request memshift did not see.
        if (i > 0 && this.queue.at(i - 1)?.silent === false) this.mismatch();
        return this.unpaired();
      }
      if ((p.expect & bit) !== 0) {
        if (p.silent && this.ambiguous(i, bit)) this.markUnsureThroughLoud(i);
        this.passOver(i);
        return this.begin(p, res, bit);
      }
      if (!p.silent) {
        // A loud request owes the next reply and this is not one it can send.
        this.mismatch();
        return this.unpaired();
      }
    }
  }

  /** Pairs a meta reply that names its request by opaque or key. */
  private byIdentity(
    res: MetaResponse,
    bit: number,
    opaque: string | undefined,
    key: string | undefined,
  ): void {
    // The whole queue, not only LOOKAHEAD: a hit may follow a long run of quiet misses.
    const n = this.queue.length;
    for (let i = 0; i < n; i++) {
      const p = this.queue.at(i)!;
      if ((p.expect & bit) === 0 || p.noreply) continue;
      if (p.opaque !== opaque) continue;
      if (key !== undefined && p.returnsKey && !tokenIs(key, p.key)) continue;
      this.passOver(i);
      this.inStep(1);
      p.unsure = false; // the reply named it
      return this.begin(p, res, bit);
    }
    this.unpaired();
  }

  /** Whether a request after the silent one at `i`, up to the first loud one, could also have sent `bit`. */
  private ambiguous(i: number, bit: number): boolean {
    for (let j = i + 1; j < i + LOOKAHEAD; j++) {
      const q = this.queue.at(j);
      if (q === undefined) return false;
      if ((q.expect & bit) !== 0) return true;
      if (!q.silent) return false;
    }
    return true;
  }

  /** The first reply frame for `p`, now at the head of the queue. */
  private begin(p: PendingRequest, res: AsciiResponse, bit: number): void {
    if (p.keys !== undefined) return this.more(p, res, bit);
    if (p.command === 'other' && (bit & multiLine(p)) !== 0) {
      p.started = true; // a multi-line admin reply, ended by END
      return;
    }
    // Reported before it leaves the queue, so that noreply requests after it are reported after it.
    if (p.noreply) this.giveUp(p);
    else {
      const out = this.outcome;
      asciiReplyOutcome(p, res, bit, out);
      this.finish(p, out.outcome, out.value, out.flags, out.number);
    }
    this.shiftHead();
  }

  /** Later frames of a multi-frame reply: VALUE lines and END of a retrieval, lines of an admin reply. */
  private more(p: PendingRequest, res: AsciiResponse, bit: number): void {
    if (p.keys === undefined) {
      if ((bit & multiLine(p)) === 0) this.shiftHead();
      return;
    }
    if (res.kind === 'value') {
      const keys = p.keys;
      let j = p.nextKey;
      while (j < keys.length && !keys[j]!.equals(res.key)) j++;
      if (j === keys.length) {
        // Not a key this request asked for (or not in order): the reply is someone else's.
        this.mismatch();
        return this.unpaired();
      }
      if (!p.started) {
        p.started = true;
        this.inStep(1);
      }
      // A skipped value stays the marker: a hit whose value is not known. A value kept until END
      // holds pending budget; without room it is not kept (nothing is filled from it).
      p.values![j] =
        res.value === SKIPPED_VALUE || !this.keepRead(p, res.value) ? SKIPPED_VALUE : Buffer.from(res.value);
      p.valueFlags![j] = res.flags;
      p.nextKey = j + 1;
      return;
    }
    if (bit === END) this.retrievalDone(p);
    else {
      // An error in place of (or in the middle of) a retrieval reply.
      if (bit !== ERROR) this.mismatch();
      for (const key of p.keys) {
        if (p.unsure || bit !== ERROR) this.giveUpKey(p, key);
        else this.emit(p, key, 'error', undefined, undefined, undefined);
      }
      this.release(p);
    }
    this.shiftHead();
  }

  /** Takes room in the pending budget for a value read before its retrieval's END. */
  private keepRead(p: PendingRequest, value: Buffer): boolean {
    if (value.length === 0) return true;
    if (!this.ctx.pendingBytes.take(value.length)) {
      this.ctx.counters.shedValues++;
      return false;
    }
    p.charged += value.length;
    return true;
  }

  private retrievalDone(p: PendingRequest): void {
    const keys = p.keys!;
    if (p.unsure) return this.giveUp(p);
    for (let i = 0; i < keys.length; i++) {
      const value = p.values![i];
      if (value === SKIPPED_VALUE) this.emit(p, keys[i]!, 'hit', undefined, undefined, undefined);
      else if (value !== undefined) this.emit(p, keys[i]!, 'hit', value, p.valueFlags![i], undefined);
      else this.emit(p, keys[i]!, 'miss', undefined, undefined, undefined);
    }
  }

  private giveUpKey(p: PendingRequest, key: Buffer): void {
    if (p.command === 'get') this.ctx.counters.droppedReads++;
    else this.emit(p, key, 'unknown', undefined, undefined, undefined);
  }
}

/** `stats cachedump` and `stats detail dump` answer in plain lines; other admin lines stand alone (BUSY, slabs replies). */
function multiLine(p: PendingRequest): number {
  return p.name === 'stats' ? MULTI_LINE | LINE : MULTI_LINE;
}

/** Whether a latin1 token spells exactly the key's bytes (no string made of the key). */
function tokenIs(token: string, key: Buffer): boolean {
  if (token.length !== key.length) return false;
  for (let i = 0; i < key.length; i++) if (token.charCodeAt(i) !== key[i]) return false;
  return true;
}

/** First line start at or after `from` (offset 0 counts only when `from` is 0) that `plausible` accepts. */
function huntLines(buf: Buffer, from: number, plausible: (buf: Buffer, at: number) => boolean): number {
  let at = from;
  if (at === 0) {
    if (plausible(buf, 0)) return 0;
    at = 1;
  }
  for (;;) {
    const lf = buf.indexOf(0x0a, at - 1);
    if (lf < 0 || lf + 1 >= buf.length) return -1;
    if (plausible(buf, lf + 1)) return lf + 1;
    at = lf + 2;
  }
}
