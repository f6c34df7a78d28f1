/**
 * The meta commands and replies (protocol.txt, "Meta Commands" and the Meta
 * Get/Set/Delete/Arithmetic/Debug/No-Op sections): `<cm> <key> <datalen*>
 * <flag>*` and `<RC> <datalen*> <flag>*`.
 *
 * What frames the stream and what does not: the command code, the key and the
 * `ms` data length decide where the next request starts, so a missing or
 * unusable data length, a key over 250 bytes, or an undecodable base64 key on
 * `ms` is a ProtocolError. Flags never frame anything: an unknown flag letter
 * or a bad mode token still makes a well-framed request, which memcached
 * answers with CLIENT_ERROR while the connection goes on. Such requests are
 * returned as they are; `metaFlagProblem()` says what memcached will object to.
 */
import type { MetaCode, MetaCommand, MetaRequest, MetaResponse } from './ascii-frames.js';
import type { ParseCursor } from './decoder.js';
import { protocolError } from './errors.js';
import { dataBlock, type LineTokens } from './lines.js';
import { KEY_MAX_BYTES, type Limits } from './limits.js';
import { isI32Text, isU32Text, isU64Text, readLength } from './numbers.js';

const LOWER_B = 0x62; // b
const LOWER_Q = 0x71; // q
const UPPER_O = 0x4f; // O

const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n', 'latin1');

/** What a flag's token is checked against (memcached rejects the request otherwise). */
type TokenKind = 'none' | 'u32' | 'i32' | 'u64' | 'opaque' | 'mode' | 'any';

interface MetaFlag {
  readonly letter: string;
  readonly token: TokenKind;
  readonly meaning: string;
}

/** `P` and `L` are accepted by every meta command and ignored: hints for proxies (protocol.txt, "Meta Commands"). */
const PROXY_HINTS = [
  { letter: 'P', token: 'any', meaning: 'proxy path hint, ignored by memcached' },
  { letter: 'L', token: 'any', meaning: 'proxy path hint, ignored by memcached' },
] as const satisfies readonly MetaFlag[];

/**
 * Every request flag of the meta commands, per command, from protocol.txt's
 * Meta Get, Meta Set, Meta Delete, Meta Arithmetic and Meta Debug sections.
 */
export const META_FLAGS = {
  mg: [
    { letter: 'b', token: 'none', meaning: 'key is base64-encoded binary' },
    { letter: 'c', token: 'none', meaning: 'return the CAS value' },
    { letter: 'C', token: 'u64', meaning: 'compare CAS: leave out the value if it matches' },
    { letter: 'E', token: 'u64', meaning: 'use the token as the new CAS value if the item is modified' },
    { letter: 'f', token: 'none', meaning: 'return client flags' },
    { letter: 'h', token: 'none', meaning: 'return whether the item was hit before (0 or 1)' },
    { letter: 'k', token: 'none', meaning: 'return the key' },
    { letter: 'l', token: 'none', meaning: 'return seconds since last access' },
    { letter: 'N', token: 'i32', meaning: 'vivify on miss with this TTL' },
    { letter: 'O', token: 'opaque', meaning: 'opaque token copied to the reply' },
    { letter: 'q', token: 'none', meaning: 'quiet: suppress EN on miss' },
    { letter: 'R', token: 'i32', meaning: 'win the recache if remaining TTL is below the token' },
    { letter: 's', token: 'none', meaning: 'return the item size' },
    { letter: 't', token: 'none', meaning: 'return remaining TTL (-1 for unlimited)' },
    { letter: 'T', token: 'i32', meaning: 'update the TTL' },
    { letter: 'u', token: 'none', meaning: "don't bump the item in the LRU" },
    { letter: 'v', token: 'none', meaning: 'return the value in a data block' },
    ...PROXY_HINTS,
  ],
  ms: [
    { letter: 'b', token: 'none', meaning: 'key is base64-encoded binary' },
    { letter: 'c', token: 'none', meaning: 'return the CAS value if stored' },
    { letter: 'C', token: 'u64', meaning: 'compare CAS before storing' },
    { letter: 'E', token: 'u64', meaning: 'use the token as the new CAS value' },
    { letter: 'F', token: 'u32', meaning: 'client flags' },
    { letter: 'I', token: 'none', meaning: 'invalidate: store as stale if the CAS is older' },
    { letter: 'k', token: 'none', meaning: 'return the key' },
    { letter: 'O', token: 'opaque', meaning: 'opaque token copied to the reply' },
    { letter: 'q', token: 'none', meaning: 'quiet: suppress HD' },
    { letter: 's', token: 'none', meaning: 'return the stored size' },
    { letter: 'T', token: 'i32', meaning: 'TTL' },
    { letter: 'M', token: 'mode', meaning: 'mode: E add, A append, P prepend, R replace, S set' },
    { letter: 'N', token: 'i32', meaning: 'in append mode, vivify on miss with this TTL' },
    ...PROXY_HINTS,
  ],
  md: [
    { letter: 'b', token: 'none', meaning: 'key is base64-encoded binary' },
    { letter: 'C', token: 'u64', meaning: 'compare CAS' },
    { letter: 'E', token: 'u64', meaning: 'use the token as the new CAS value' },
    { letter: 'I', token: 'none', meaning: 'invalidate: mark stale and bump CAS instead of deleting' },
    { letter: 'k', token: 'none', meaning: 'return the key' },
    { letter: 'O', token: 'opaque', meaning: 'opaque token copied to the reply' },
    { letter: 'q', token: 'none', meaning: 'quiet: suppress HD' },
    { letter: 'T', token: 'i32', meaning: 'update the TTL (with I only)' },
    { letter: 'x', token: 'none', meaning: 'remove the value but keep the item' },
    ...PROXY_HINTS,
  ],
  ma: [
    { letter: 'b', token: 'none', meaning: 'key is base64-encoded binary' },
    { letter: 'C', token: 'u64', meaning: 'compare CAS' },
    { letter: 'E', token: 'u64', meaning: 'use the token as the new CAS value' },
    { letter: 'N', token: 'i32', meaning: 'create on miss with this TTL' },
    { letter: 'J', token: 'u64', meaning: 'initial value when created on miss' },
    { letter: 'D', token: 'u64', meaning: 'delta (default 1)' },
    { letter: 'T', token: 'i32', meaning: 'update the TTL on success' },
    { letter: 'M', token: 'mode', meaning: 'mode: I or + increment, D or - decrement' },
    { letter: 'O', token: 'opaque', meaning: 'opaque token copied to the reply' },
    { letter: 'q', token: 'none', meaning: 'quiet: suppress HD' },
    { letter: 't', token: 'none', meaning: 'return remaining TTL' },
    { letter: 'c', token: 'none', meaning: 'return the CAS value' },
    { letter: 'v', token: 'none', meaning: 'return the new value' },
    { letter: 'k', token: 'none', meaning: 'return the key' },
    ...PROXY_HINTS,
  ],
  me: [{ letter: 'b', token: 'none', meaning: 'key is base64-encoded binary (the reply key is too)' }],
  mn: [],
} as const satisfies Record<MetaCommand, readonly MetaFlag[]>;

/** Modes accepted by the `M` token, per command (protocol.txt, Meta Set and Meta Arithmetic). */
const MODES: Partial<Record<MetaCommand, string>> = { ms: 'EAPRSeaprs', ma: 'ID+-id' };

/** Opaque tokens may be up to 32 bytes (protocol.txt, "Meta Get", O flag). */
const OPAQUE_MAX = 32;

/**
 * The token of `flag` in `flags`: '' for a flag present without a token,
 * undefined when absent. Flags are matched by their first character, as
 * memcached does.
 */
export function metaToken(flags: readonly string[], flag: string): string | undefined {
  const code = flag.charCodeAt(0);
  for (let i = 0; i < flags.length; i++) {
    const f = flags[i]!;
    if (f.charCodeAt(0) === code) return f.length === 1 ? '' : f.slice(1);
  }
  return undefined;
}

/**
 * The number after flag `letter` in `flags`, as `Number(token.slice(1))`
 * reads it, or undefined when the flag is absent. For the numbers a reply
 * carries (O, f, t, s; a CAS value is up to 64 bits, so `c` is read as text
 * with `metaToken`), without making the token's slice.
 */
export function metaFlagNumber(flags: readonly string[], letter: string): number | undefined {
  const code = letter.charCodeAt(0);
  for (let i = 0; i < flags.length; i++) {
    const f = flags[i]!;
    if (f.charCodeAt(0) === code) return flagTokenNumber(f);
  }
  return undefined;
}

/**
 * `Number(token.slice(1))`: the number after a flag's letter. Plain decimal
 * digits, maybe after a minus (what memcached writes), are read in place, up
 * to 15 of them so the double is exact; anything else goes through `Number`,
 * so an odd token reads as it always did ('' as 0, '0x1f', 'abc' as NaN).
 */
export function flagTokenNumber(token: string): number {
  const n = token.length;
  const negative = n > 2 && token.charCodeAt(1) === 0x2d; // -
  let i = negative ? 2 : 1;
  if (i >= n || n > 16) return Number(token.slice(1));
  let v = 0;
  for (; i < n; i++) {
    const d = token.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return Number(token.slice(1));
    v = v * 10 + d;
  }
  return negative ? -v : v;
}

export function hasMetaFlag(flags: readonly string[], flag: string): boolean {
  const code = flag.charCodeAt(0);
  for (let i = 0; i < flags.length; i++) if (flags[i]!.charCodeAt(0) === code) return true;
  return false;
}

/**
 * What memcached will object to in a meta request's flags (it answers
 * CLIENT_ERROR and the connection goes on), or undefined when they are valid.
 */
export function metaFlagProblem(command: MetaCommand, flags: readonly string[]): string | undefined {
  const table: readonly MetaFlag[] = META_FLAGS[command];
  for (const f of flags) {
    const letter = f.charAt(0);
    const spec = table.find((s) => s.letter === letter);
    if (!spec) return `invalid flag ${JSON.stringify(f)} for ${command}`;
    const token = f.slice(1);
    if (!tokenValid(spec.token, token, command))
      return `bad token in flag ${JSON.stringify(f)} for ${command}`;
  }
  return undefined;
}

function tokenValid(kind: TokenKind, token: string, command: MetaCommand): boolean {
  switch (kind) {
    case 'none':
      return token === '';
    case 'u32':
      return isU32Text(token);
    case 'i32':
      return isI32Text(token);
    case 'u64':
      return isU64Text(token);
    case 'opaque':
      return token.length > 0 && token.length <= OPAQUE_MAX;
    case 'mode':
      return token.length === 1 && (MODES[command] ?? '').includes(token);
    case 'any':
      return true;
  }
}

/**
 * Whether a key must travel base64-encoded in a meta command: memcached splits
 * lines on spaces and ends them at \n, and protocol.txt ("Keys") forbids
 * control characters and whitespace. Bytes above 127 are fine as they are.
 */
export function keyNeedsBase64(key: Uint8Array): boolean {
  for (let i = 0; i < key.length; i++) {
    const c = key[i]!;
    if (c <= 0x20 || c === 0x7f) return true;
  }
  return false;
}

/**
 * Whether a meta command can name this key at all. memcached reads the key
 * token before decoding it and refuses a token over 250 bytes, so a key that
 * needs base64 can be at most 186 bytes (4 * ceil(186 / 3) = 248; 187 bytes
 * take 252, and memcached 1.6.18 answers CLIENT_ERROR); a raw key at most 250.
 * Longer keys exist only through the binary protocol, whose keys may hold any byte.
 */
export function metaKeyFits(key: Uint8Array): boolean {
  if (key.length === 0 || key.length > KEY_MAX_BYTES) return false;
  return !keyNeedsBase64(key) || 4 * Math.ceil(key.length / 3) <= KEY_MAX_BYTES;
}

/** Decodes a base64 key token; undefined when it is not valid base64. */
export function decodeBase64Key(buf: Buffer, from: number, to: number): Buffer | undefined {
  const len = to - from;
  if (len === 0 || len % 4 === 1) return undefined;
  let pad = 0;
  for (let i = from; i < to; i++) {
    const c = buf[i]!;
    if (c === 0x3d) {
      // '=' only as the last one or two characters
      pad++;
      if (pad > 2) return undefined;
      continue;
    }
    if (pad > 0) return undefined;
    const ok =
      (c >= 0x41 && c <= 0x5a) ||
      (c >= 0x61 && c <= 0x7a) ||
      (c >= 0x30 && c <= 0x39) ||
      c === 0x2b ||
      c === 0x2f;
    if (!ok) return undefined;
  }
  if (pad > 0 && len % 4 !== 0) return undefined;
  return Buffer.from(buf.toString('latin1', from, to), 'base64');
}

function metaCommandOf(c: number): MetaCommand | undefined {
  switch (c) {
    case 0x67: // g
      return 'mg';
    case 0x73: // s
      return 'ms';
    case 0x64: // d
      return 'md';
    case 0x61: // a
      return 'ma';
    case 0x6e: // n
      return 'mn';
    case 0x65: // e
      return 'me';
    default:
      return undefined;
  }
}

/**
 * Reads a meta request from a tokenized line (`t`, whose first word is two
 * bytes starting with `m`). Returns null when the line is a well-framed
 * single-line request memshift cannot type (an unknown `m?` code, a missing
 * key, an oversized or undecodable key on a command without a data block):
 * the caller keeps it as an 'other' request so it can still be forwarded and
 * paired with memcached's CLIENT_ERROR.
 */
export function parseMetaRequest(
  buf: Buffer,
  start: number,
  next: number,
  t: LineTokens,
  limits: Limits,
  cursor: ParseCursor,
): MetaRequest | null | undefined {
  const command = metaCommandOf(buf[t.start(0) + 1]!);
  if (command === undefined) return null;
  const storing = command === 'ms';
  if (command === 'mn') {
    cursor.end = next;
    return metaRequest(command, EMPTY, false, t.strings(buf, 1), undefined);
  }
  if (t.count < (storing ? 3 : 2)) {
    if (storing) throw protocolError('ms without a key and data length', buf, start);
    return null;
  }
  const flags = t.strings(buf, storing ? 3 : 2);
  const base64 = hasFlagByte(flags, LOWER_B);
  const keyFrom = t.start(1);
  const keyTo = t.end(1);
  let key: Buffer | undefined;
  if (base64) {
    key = decodeBase64Key(buf, keyFrom, keyTo);
    if (key === undefined) {
      if (storing) throw protocolError('ms key is not valid base64', buf, keyFrom, start);
      return null;
    }
  } else {
    key = buf.subarray(keyFrom, keyTo);
  }
  if (key.length > limits.maxKeyBytes) {
    if (storing) throw protocolError(`key longer than ${limits.maxKeyBytes} bytes`, buf, keyFrom, start);
    return null;
  }
  if (!storing) {
    cursor.end = next;
    return metaRequest(command, key, base64, flags, undefined);
  }
  const len = readLength(buf, t.start(2), t.end(2));
  if (len < 0) throw protocolError('ms data length is not a number', buf, t.start(2), start);
  const value = dataBlock(buf, start, next, len, limits, cursor);
  if (value === undefined) return undefined;
  return metaRequest(command, key, base64, flags, value);
}

function hasFlagByte(flags: readonly string[], code: number): boolean {
  for (let i = 0; i < flags.length; i++) if (flags[i]!.charCodeAt(0) === code) return true;
  return false;
}

/** A meta request frame from its parts; `q` and the first `O` flag are read out. */
export function metaRequest(
  command: MetaCommand,
  key: Buffer,
  base64: boolean,
  flags: string[],
  value: Buffer | undefined,
): MetaRequest {
  let opaque: string | undefined;
  let quiet = false;
  for (let i = 0; i < flags.length; i++) {
    const c = flags[i]!.charCodeAt(0);
    if (c === LOWER_Q) quiet = true;
    else if (c === UPPER_O && opaque === undefined) opaque = flags[i]!.slice(1);
  }
  return { kind: 'meta', command, key, base64, flags, value, quiet, opaque };
}

/**
 * Reads a meta reply whose two-letter code is `code` from a tokenized line.
 * Only `VA` carries a data block, and its length frames the stream.
 */
export function parseMetaResponse(
  code: MetaCode,
  buf: Buffer,
  start: number,
  next: number,
  t: LineTokens,
  limits: Limits,
  cursor: ParseCursor,
): MetaResponse | undefined {
  if (code !== 'VA') {
    cursor.end = next;
    return { kind: 'meta', code, flags: t.strings(buf, 1), value: undefined };
  }
  if (t.count < 2) throw protocolError('VA without a data length', buf, start);
  const len = readLength(buf, t.start(1), t.end(1));
  if (len < 0) throw protocolError('VA data length is not a number', buf, t.start(1), start);
  const value = dataBlock(buf, start, next, len, limits, cursor);
  if (value === undefined) return undefined;
  return { kind: 'meta', code, flags: t.strings(buf, 2), value };
}

/**
 * `<cm> <key> [<datalen>] <flags>*\r\n` [+ value + \r\n] as parts, the value
 * uncopied. A key memcached could not read as a plain word (a space, a control
 * byte) is sent base64-encoded with the `b` flag, added when missing; a `b`
 * already in `flags` means the same: `key` is the raw bytes to encode.
 */
export function encodeMeta(
  command: MetaCommand,
  key: Buffer,
  flags: readonly string[],
  value?: Buffer,
): Buffer[] {
  const base64 = hasMetaFlag(flags, 'b') || (command !== 'mn' && keyNeedsBase64(key));
  return encodeMetaParts(command, key, base64, flags, command === 'ms' ? (value ?? EMPTY) : value);
}

export function encodeMetaRequest(req: MetaRequest): Buffer[] {
  return encodeMetaParts(req.command, req.key, req.base64, req.flags, req.value);
}

function encodeMetaParts(
  command: MetaCommand,
  key: Buffer,
  base64: boolean,
  flags: readonly string[],
  value: Buffer | undefined,
): Buffer[] {
  let tail = value === undefined ? '' : ' ' + value.length;
  for (const f of flags) tail += ' ' + f;
  if (base64 && !hasMetaFlag(flags, 'b')) tail += ' b';
  tail += '\r\n';
  let head: Buffer;
  if (command === 'mn' && key.length === 0) {
    head = Buffer.from(command + tail, 'latin1');
  } else if (base64) {
    head = Buffer.from(command + ' ' + key.toString('base64') + tail, 'latin1');
  } else {
    head = Buffer.allocUnsafe(3 + key.length + tail.length);
    head.write(command + ' ', 0, 'latin1');
    key.copy(head, 3);
    head.write(tail, 3 + key.length, 'latin1');
  }
  return value === undefined ? [head] : [head, value, CRLF];
}

export function encodeMetaResponse(res: MetaResponse): Buffer[] {
  let line: string = res.code;
  if (res.code === 'VA') line += ' ' + (res.value ?? EMPTY).length;
  for (const f of res.flags) line += ' ' + f;
  const head = Buffer.from(line + '\r\n', 'latin1');
  if (res.code !== 'VA') return [head];
  return [head, res.value ?? EMPTY, CRLF];
}
