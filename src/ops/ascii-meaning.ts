/**
 * What a text or meta request and its reply mean as an operation, whoever
 * paired them: capture's pairing (ascii-pairing.ts), which reads both
 * directions of a connection, and the proxy (paired.ts), which sent the
 * request and read its reply itself.
 */
import type { AsciiRequest, AsciiResponse, MetaRequest, MetaResponse } from '../protocol/ascii-frames.js';
import { SKIPPED_VALUE } from '../protocol/lines.js';
import type { OpOutcome } from './operation.js';
import type { PendingRequest, ReplyOutcome } from './pending.js';

// Reply classes, as bits of PendingRequest.expect.
export const STORED = 1 << 0;
export const NOT_STORED = 1 << 1;
export const EXISTS = 1 << 2;
export const NOT_FOUND = 1 << 3;
export const DELETED = 1 << 4;
export const TOUCHED = 1 << 5;
export const OK = 1 << 6;
export const VALUE = 1 << 7;
export const END = 1 << 8;
export const NUMBER = 1 << 9;
export const ERROR = 1 << 10;
export const STAT = 1 << 11;
export const VERSION = 1 << 12;
export const LINE = 1 << 13; // cachedump ITEM lines, BUSY, slabs replies, anything else
export const DUMP = 1 << 22; // lru_crawler metadump lines
export const VA = 1 << 14;
export const HD = 1 << 15;
export const EN = 1 << 16;
export const NF = 1 << 17;
export const NS = 1 << 18;
export const EX = 1 << 19;
export const MN = 1 << 20;
export const ME = 1 << 21;
export const ANY = (1 << 23) - 1;
/** Frames that start (and go on with) a reply of many lines, ended by END. */
export const MULTI_LINE = STAT | DUMP | VALUE;

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

export function classify(res: AsciiResponse): number {
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

export const O_CODE = 0x4f; // O
export const K_CODE = 0x6b; // k
const F_CODE = 0x66; // f

/** What describeAscii found besides the fields it filled: bits. */
export const ADMIN = 1; // an admin command (counted, never mirrored)
export const NOREPLY = 2; // text noreply
export const QUIT = 4; // quit: no reply, nothing to pair

const EMPTY = Buffer.alloc(0);

/**
 * Fills `p` with what `req` asks (command, key and keys as copies, flags,
 * expiry, delta, the replies it can get) and returns ADMIN, NOREPLY, QUIT
 * bits. The value is not taken: see asciiRequestValue.
 */
export function describeAscii(req: AsciiRequest, p: PendingRequest): number {
  switch (req.kind) {
    case 'storage':
      p.command = req.command;
      p.key = Buffer.from(req.key);
      p.flags = req.flags;
      p.exptime = req.exptime;
      p.expect = EXPECT_STORAGE;
      return req.noreply ? NOREPLY : 0;
    case 'retrieval': {
      p.command = req.command === 'gat' || req.command === 'gats' ? 'gat' : 'get';
      p.exptime = req.exptime;
      const keys: Buffer[] = new Array<Buffer>(req.keys.length);
      for (let i = 0; i < keys.length; i++) keys[i] = Buffer.from(req.keys[i]!);
      p.keys = keys;
      p.expect = EXPECT_RETRIEVAL;
      return 0;
    }
    case 'delete':
      p.command = 'delete';
      p.key = Buffer.from(req.key);
      p.expect = DELETED | NOT_FOUND | ERROR;
      return req.noreply ? NOREPLY : 0;
    case 'arithmetic':
      p.command = req.command;
      p.key = Buffer.from(req.key);
      p.delta = req.delta;
      p.expect = NUMBER | NOT_FOUND | ERROR;
      return req.noreply ? NOREPLY : 0;
    case 'touch':
      p.command = 'touch';
      p.key = Buffer.from(req.key);
      p.exptime = req.exptime;
      p.expect = TOUCHED | NOT_FOUND | ERROR;
      return req.noreply ? NOREPLY : 0;
    case 'flush_all':
      p.command = 'flush_all';
      p.exptime = req.delay;
      p.expect = OK | ERROR;
      return req.noreply ? NOREPLY : 0;
    case 'meta':
      return describeMeta(req, p);
    case 'quit':
      return QUIT; // no reply: memcached closes the connection
    case 'version':
      return admin(p, 'version', VERSION | ERROR, false);
    case 'verbosity':
      return admin(p, 'verbosity', OK | ERROR, req.noreply);
    case 'stats':
      return admin(p, 'stats', EXPECT_STATS, false);
    case 'other':
      // lru_crawler, watch, slabs, an unknown word answered with ERROR...: any reply, up to END if it has lines.
      return admin(p, req.name, ANY, false);
  }
}

/** The value a request stores (not copied), if it stores one. */
export function asciiRequestValue(req: AsciiRequest): Buffer | undefined {
  if (req.kind === 'storage') return req.value;
  if (req.kind === 'meta' && req.command === 'ms') return req.value ?? EMPTY;
  return undefined;
}

function admin(p: PendingRequest, name: string, expect: number, noreply: boolean): number {
  p.name = name;
  p.expect = expect;
  return noreply ? ADMIN | NOREPLY : ADMIN;
}

function describeMeta(req: MetaRequest, p: PendingRequest): number {
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
      return 0;
    case 'ms':
      p.command = hasCas ? 'cas' : msMode(mode);
      p.expect = HD | NS | EX | NF | ERROR;
      p.silentOutcome = 'stored';
      return 0;
    case 'md':
      p.command = 'delete';
      p.expect = HD | NF | EX | ERROR;
      p.silentOutcome = 'deleted';
      return 0;
    case 'ma':
      p.command = mode === 'D' || mode === 'd' || mode === '-' ? 'decr' : 'incr';
      p.delta ??= 1n;
      p.expect = HD | VA | NF | NS | EX | ERROR;
      p.silentOutcome = 'number'; // a success whose new value was not sent
      return 0;
    case 'mn':
      p.name = 'mn'; // a fence, not counted as admin: it exists to end quiet pipelines
      p.expect = MN;
      p.silent = false;
      return 0;
    case 'me':
      p.name = 'me';
      p.expect = ME | EN | ERROR;
      p.silent = false;
      return ADMIN;
  }
}

/**
 * Fills `out` with the outcome of the one-frame reply `res` (classified as
 * `bit`) to the keyed request `p`: a value read is copied.
 */
export function asciiReplyOutcome(
  p: PendingRequest,
  res: AsciiResponse,
  bit: number,
  out: ReplyOutcome,
): void {
  out.value = p.value;
  out.flags = p.flags;
  out.number = undefined;
  if (res.kind === 'meta') return metaReplyOutcome(p, res, bit, out);
  if (res.kind === 'number') {
    out.outcome = 'number';
    out.number = res.value;
    return;
  }
  out.outcome = textOutcome(bit);
}

function metaReplyOutcome(p: PendingRequest, res: MetaResponse, bit: number, out: ReplyOutcome): void {
  const command = p.command;
  if (command === 'get' || command === 'gat') {
    if (bit === EN || bit === ERROR) {
      out.outcome = bit === EN ? 'miss' : 'error';
      return;
    }
    const flagsText = flagToken(res.flags, F_CODE);
    out.outcome = 'hit';
    out.flags = flagsText === undefined ? undefined : Number(flagsText);
    // HD: a hit whose value was not asked for (no v flag).
    out.value = res.value === undefined || res.value === SKIPPED_VALUE ? undefined : Buffer.from(res.value);
    return;
  }
  if ((command === 'incr' || command === 'decr') && (bit === VA || bit === HD)) {
    out.outcome = 'number';
    if (bit === VA) {
      out.value = undefined;
      out.flags = undefined;
      out.number = res.value !== undefined && res.value.length > 0 ? digits(res.value) : undefined;
    }
    return;
  }
  out.outcome = metaOutcome(command, bit);
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

export function flagToken(flags: readonly string[], code: number): string | undefined {
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
