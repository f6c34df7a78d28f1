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
import type { AsciiRequest, AsciiResponse, MetaRequest, MetaResponse } from '../protocol/ascii-frames.js';
import { AsciiRequestParser, AsciiResponseParser } from '../protocol/ascii.js';
import { SKIPPED_VALUE } from '../protocol/lines.js';
import { isAsciiRequestStart, isAsciiResponseStart } from './resync.js';
import type { OpOutcome } from './operation.js';
import { PendingRequest } from './pending.js';
import { LOOKAHEAD, PairingSession, type SessionContext } from './session.js';

// Reply classes, as bits of PendingRequest.expect.
const STORED = 1 << 0;
const NOT_STORED = 1 << 1;
const EXISTS = 1 << 2;
const NOT_FOUND = 1 << 3;
const DELETED = 1 << 4;
const TOUCHED = 1 << 5;
const OK = 1 << 6;
const VALUE = 1 << 7;
const END = 1 << 8;
const NUMBER = 1 << 9;
const ERROR = 1 << 10;
const STAT = 1 << 11;
const VERSION = 1 << 12;
const LINE = 1 << 13; // cachedump ITEM lines, BUSY, slabs replies, anything else
const DUMP = 1 << 22; // lru_crawler metadump lines
const VA = 1 << 14;
const HD = 1 << 15;
const EN = 1 << 16;
const NF = 1 << 17;
const NS = 1 << 18;
const EX = 1 << 19;
const MN = 1 << 20;
const ME = 1 << 21;
const ANY = (1 << 23) - 1;
/** Frames that start (and go on with) a reply of many lines, ended by END. */
const MULTI_LINE = STAT | DUMP | VALUE;

const EXPECT_STORAGE = STORED | NOT_STORED | EXISTS | NOT_FOUND | ERROR;
const EXPECT_RETRIEVAL = VALUE | END | ERROR;
const EXPECT_STATS = STAT | END | LINE | OK | ERROR;

const META_CODE_BITS = { VA, HD, EN, NF, NS, EX, MN, ME } as const;
const STATUS_BITS = {
  STORED,
  NOT_STORED,
  EXISTS,
  NOT_FOUND,
  DELETED,
  TOUCHED,
  OK,
  RESET: OK,
} as const;

function classify(res: AsciiResponse): number {
  switch (res.kind) {
    case 'status':
      return STATUS_BITS[res.status];
    case 'value':
      return VALUE;
    case 'end':
      return END;
    case 'number':
      return NUMBER;
    case 'error':
      return ERROR;
    case 'stat':
      return STAT;
    case 'version':
      return VERSION;
    case 'meta':
      return META_CODE_BITS[res.code];
    case 'metadump':
      return DUMP;
    case 'line':
      return LINE;
  }
}

const O_CODE = 0x4f; // O
const K_CODE = 0x6b; // k
const F_CODE = 0x66; // f

export class AsciiSession extends PairingSession<AsciiRequest, AsciiResponse> {
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
    switch (req.kind) {
      case 'storage':
        p.command = req.command;
        p.key = Buffer.from(req.key);
        this.takeValue(p, req.value);
        p.flags = req.flags;
        p.exptime = req.exptime;
        return this.loudOrNoreply(p, EXPECT_STORAGE, req.noreply);
      case 'retrieval': {
        p.command = req.command === 'gat' || req.command === 'gats' ? 'gat' : 'get';
        p.exptime = req.exptime;
        const keys: Buffer[] = new Array<Buffer>(req.keys.length);
        for (let i = 0; i < keys.length; i++) keys[i] = Buffer.from(req.keys[i]!);
        p.keys = keys;
        p.values = new Array<Buffer | undefined>(keys.length).fill(undefined);
        p.valueFlags = new Array<number>(keys.length).fill(0);
        p.expect = EXPECT_RETRIEVAL;
        return this.enqueue(p);
      }
      case 'delete':
        p.command = 'delete';
        p.key = Buffer.from(req.key);
        return this.loudOrNoreply(p, DELETED | NOT_FOUND | ERROR, req.noreply);
      case 'arithmetic':
        p.command = req.command;
        p.key = Buffer.from(req.key);
        p.delta = req.delta;
        return this.loudOrNoreply(p, NUMBER | NOT_FOUND | ERROR, req.noreply);
      case 'touch':
        p.command = 'touch';
        p.key = Buffer.from(req.key);
        p.exptime = req.exptime;
        return this.loudOrNoreply(p, TOUCHED | NOT_FOUND | ERROR, req.noreply);
      case 'flush_all':
        p.command = 'flush_all';
        p.exptime = req.delay;
        return this.loudOrNoreply(p, OK | ERROR, req.noreply);
      case 'meta':
        return this.meta(p, req);
      case 'quit':
        this.ctx.counters.adminCommands++;
        return; // no reply: memcached closes the connection
      case 'version':
        return this.admin(p, 'version', VERSION | ERROR, false);
      case 'verbosity':
        return this.admin(p, 'verbosity', OK | ERROR, req.noreply);
      case 'stats':
        return this.admin(p, 'stats', EXPECT_STATS, false);
      case 'other':
        // lru_crawler, watch, slabs, an unknown word answered with ERROR...: any reply, up to END if it has lines.
        return this.admin(p, req.name, ANY, false);
    }
  }

  private loudOrNoreply(p: PendingRequest, expect: number, noreply: boolean): void {
    p.expect = expect;
    if (noreply) this.noreply(p);
    this.enqueue(p);
  }

  private admin(p: PendingRequest, name: string, expect: number, noreply: boolean): void {
    this.ctx.counters.adminCommands++;
    p.name = name;
    p.expect = expect;
    if (noreply) this.noreply(p);
    this.enqueue(p);
  }

  /** A text noreply request: reported 'unknown' in its turn; only an error reply can still be its own. */
  private noreply(p: PendingRequest): void {
    p.noreply = true;
    p.silent = true;
    p.expect = ERROR;
    p.silentOutcome = 'unknown';
  }

  private meta(p: PendingRequest, req: MetaRequest): void {
    p.protocol = 'meta';
    p.key = req.key.length === 0 ? p.key : Buffer.from(req.key);
    p.opaque = req.opaque;
    p.silent = req.quiet;
    let mode = '';
    let hasCas = false;
    let returnsKey = 0;
    for (const f of req.flags) {
      switch (f.charCodeAt(0)) {
        case 0x54: // T: TTL
          p.exptime = intToken(f);
          break;
        case 0x46: // F: client flags
          p.flags = intToken(f);
          break;
        case 0x4d: // M: mode
          mode = f.slice(1);
          break;
        case 0x43: // C: compare CAS
          hasCas = true;
          break;
        case 0x44: // D: delta
          if (req.command === 'ma') p.delta = bigToken(f);
          break;
        case K_CODE:
          returnsKey = 1;
          break;
      }
    }
    p.returnsKey = returnsKey === 1 && !req.base64;
    switch (req.command) {
      case 'mg':
        // With T the read also sets a new TTL: gat (protocol.txt, "Meta Get").
        p.command = p.exptime !== undefined ? 'gat' : 'get';
        p.expect = VA | HD | EN | ERROR;
        p.silentOutcome = 'miss'; // q suppresses EN only
        break;
      case 'ms':
        p.command = hasCas ? 'cas' : msMode(mode);
        this.takeValue(p, req.value ?? EMPTY);
        p.expect = HD | NS | EX | NF | ERROR;
        p.silentOutcome = 'stored';
        break;
      case 'md':
        p.command = 'delete';
        p.expect = HD | NF | EX | ERROR;
        p.silentOutcome = 'deleted';
        break;
      case 'ma':
        p.command = mode === 'D' || mode === 'd' || mode === '-' ? 'decr' : 'incr';
        p.delta ??= 1n;
        p.expect = HD | VA | NF | NS | EX | ERROR;
        p.silentOutcome = 'number'; // a success whose new value was not sent
        break;
      case 'mn':
        p.name = 'mn'; // a fence, not counted as admin: it exists to end quiet pipelines
        p.expect = MN;
        p.silent = false;
        break;
      case 'me':
        this.ctx.counters.adminCommands++;
        p.name = 'me';
        p.expect = ME | EN | ERROR;
        p.silent = false;
        break;
    }
    this.enqueue(p);
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
    else if (res.kind === 'meta') this.metaOutcome(p, res, bit);
    else if (res.kind === 'number') this.finish(p, 'number', p.value, p.flags, res.value);
    else this.finish(p, textOutcome(bit));
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

  private metaOutcome(p: PendingRequest, res: MetaResponse, bit: number): void {
    const command = p.command;
    if (command === 'get' || command === 'gat') {
      if (bit === EN) return this.finish(p, 'miss');
      if (bit === ERROR) return this.finish(p, 'error');
      const flagsText = flagToken(res.flags, F_CODE);
      const flags = flagsText === undefined ? undefined : Number(flagsText);
      // HD: a hit whose value was not asked for (no v flag).
      const value =
        res.value === undefined || res.value === SKIPPED_VALUE ? undefined : Buffer.from(res.value);
      return this.finish(p, 'hit', value, flags);
    }
    if (command === 'incr' || command === 'decr') {
      if (bit === VA) {
        const n = res.value !== undefined && res.value.length > 0 ? digits(res.value) : undefined;
        return this.finish(p, 'number', undefined, undefined, n);
      }
      if (bit === HD) return this.finish(p, 'number');
    }
    this.finish(p, metaOutcome(command, bit));
  }
}

const EMPTY = Buffer.alloc(0);

/** `stats cachedump` and `stats detail dump` answer in plain lines; other admin lines stand alone (BUSY, slabs replies). */
function multiLine(p: PendingRequest): number {
  return p.name === 'stats' ? MULTI_LINE | LINE : MULTI_LINE;
}

function textOutcome(bit: number): OpOutcome {
  switch (bit) {
    case STORED:
      return 'stored';
    case NOT_STORED:
      return 'not_stored';
    case EXISTS:
      return 'exists';
    case NOT_FOUND:
      return 'not_found';
    case DELETED:
      return 'deleted';
    case TOUCHED:
      return 'touched';
    case OK:
      return 'ok';
    case ERROR:
      return 'error';
    default:
      return 'unknown';
  }
}

function metaOutcome(command: string, bit: number): OpOutcome {
  switch (bit) {
    case HD:
      return command === 'delete' ? 'deleted' : 'stored';
    case NS:
      return 'not_stored';
    case EX:
      return 'exists';
    case NF:
      return 'not_found';
    case ERROR:
      return 'error';
    default:
      return 'unknown';
  }
}

/** ms's M token (protocol.txt, "Meta Set"): E add, A append, P prepend, R replace, S set (the default). */
function msMode(mode: string): 'set' | 'add' | 'append' | 'prepend' | 'replace' {
  switch (mode) {
    case 'E':
    case 'e':
      return 'add';
    case 'A':
    case 'a':
      return 'append';
    case 'P':
    case 'p':
      return 'prepend';
    case 'R':
    case 'r':
      return 'replace';
    default:
      return 'set';
  }
}

function flagToken(flags: readonly string[], code: number): string | undefined {
  for (let i = 0; i < flags.length; i++) {
    const f = flags[i]!;
    if (f.charCodeAt(0) === code) return f.slice(1);
  }
  return undefined;
}

function intToken(flag: string): number | undefined {
  const n = Number(flag.slice(1));
  return Number.isInteger(n) ? n : undefined;
}

function bigToken(flag: string): bigint | undefined {
  const text = flag.slice(1);
  return /^[0-9]{1,20}$/.test(text) ? BigInt(text) : undefined;
}

function digits(value: Buffer): bigint | undefined {
  for (let i = 0; i < value.length; i++) if (value[i]! < 0x30 || value[i]! > 0x39) return undefined;
  return BigInt(value.toString('latin1'));
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
