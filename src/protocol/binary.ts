/**
 * memcached's binary protocol (reference/memcached-protocol-binary.txt): an
 * incremental parser for each direction and encoders for both.
 *
 * Every packet is a 24-byte header followed by extras, key and value, whose
 * lengths the header gives (section 2), so a stream can always be delimited
 * without looking at the opcode. The parsers therefore fail only when that
 * framing is impossible (wrong magic, extras and key longer than the body) or
 * a bound is broken (key or value too long): those are the cases where
 * memcached itself closes the connection. Opcode-specific shape rules (which
 * extras lengths an opcode takes) do not break framing, so they are checked
 * separately by `binaryRequestProblem()` (binary-opcodes.ts), and its extras
 * readers return undefined for a shape they cannot read instead of throwing.
 */
import {
  BINARY_HEADER_BYTES,
  BinaryDataType,
  BinaryOpcode,
  BinaryStatus,
  type BinaryArithmeticOpcode,
  type BinaryConcatOpcode,
  type BinaryDeleteOpcode,
  type BinaryFlushOpcode,
  type BinaryGetOpcode,
  type BinaryQuitOpcode,
  type BinaryStoreOpcode,
  type BinaryTouchOpcode,
} from './binary-opcodes.js';
import { B } from './bytes.js';
import type { FrameParser, ParseCursor } from './decoder.js';
import { protocolError } from './errors.js';
import { DEFAULT_LIMITS, type Limits } from './limits.js';
import { SKIPPED_VALUE } from './lines.js';

export * from './binary-opcodes.js';

/** Fields both directions share. extras, key and value are views of the parsed input, never copies. */
interface BinaryPacket {
  readonly opcode: number;
  readonly dataType: number;
  readonly opaque: number;
  /** 0n when the header's CAS field is zero. */
  readonly cas: bigint;
  readonly extras: Buffer;
  readonly key: Buffer;
  readonly value: Buffer;
}

export interface BinaryRequest extends BinaryPacket {
  readonly magic: typeof B.BINARY_REQUEST;
  /** The request header's "reserved" field; vbucket-aware servers read it as the vbucket id. */
  readonly vbucket: number;
}

export interface BinaryResponse extends BinaryPacket {
  readonly magic: typeof B.BINARY_RESPONSE;
  /** See BinaryStatus; non-zero means the value holds a textual error message (section 4.1). */
  readonly status: number;
}

export type BinaryFrame = BinaryRequest | BinaryResponse;

/** What an encoder needs: omitted fields are zero or empty. A parsed frame is a valid init. */
export interface BinaryPacketInit {
  readonly opcode: number;
  readonly dataType?: number;
  readonly opaque?: number;
  readonly cas?: bigint;
  readonly extras?: Buffer;
  readonly key?: Buffer;
  readonly value?: Buffer;
}

export interface BinaryRequestInit extends BinaryPacketInit {
  readonly vbucket?: number;
}

export interface BinaryResponseInit extends BinaryPacketInit {
  readonly status?: number;
}

// Shared empty views: most packets lack extras, key or value, and a
// zero-length Buffer cannot be written through, so one instance serves all.
const EMPTY = Buffer.alloc(0);
const ZERO_CAS = 0n;

// Header field offsets (section 2).
const AT_OPCODE = 1;
const AT_KEY_LENGTH = 2;
const AT_EXTRAS_LENGTH = 4;
const AT_DATA_TYPE = 5;
const AT_VBUCKET_OR_STATUS = 6;
const AT_BODY_LENGTH = 8;
const AT_OPAQUE = 12;
const AT_CAS = 16;

/** Reads binary requests (magic 0x80): what a client sends, what the proxy and capture paths see. */
export class BinaryRequestParser implements FrameParser<BinaryRequest> {
  readonly limits: Limits;

  constructor(limits: Limits = DEFAULT_LIMITS) {
    this.limits = limits;
  }

  parse(buf: Buffer, start: number, cursor: ParseCursor): BinaryRequest | undefined {
    const total = packetLength(buf, start, B.BINARY_REQUEST, this.limits, cursor);
    if (total === 0) return undefined;
    const extrasEnd = start + BINARY_HEADER_BYTES + buf[start + AT_EXTRAS_LENGTH]!;
    const keyEnd = extrasEnd + u16(buf, start + AT_KEY_LENGTH);
    const end = start + total;
    cursor.end = end;
    const skipped = (cursor.skip ?? 0) > 0;
    return {
      magic: B.BINARY_REQUEST,
      opcode: buf[start + AT_OPCODE]!,
      dataType: buf[start + AT_DATA_TYPE]!,
      vbucket: u16(buf, start + AT_VBUCKET_OR_STATUS),
      opaque: u32(buf, start + AT_OPAQUE),
      cas: readCas(buf, start + AT_CAS),
      extras: view(buf, start + BINARY_HEADER_BYTES, extrasEnd),
      key: view(buf, extrasEnd, keyEnd),
      value: skipped ? SKIPPED_VALUE : view(buf, keyEnd, end),
    };
  }
}

/** Reads binary responses (magic 0x81): what a server sends back. */
export class BinaryResponseParser implements FrameParser<BinaryResponse> {
  readonly limits: Limits;

  constructor(limits: Limits = DEFAULT_LIMITS) {
    this.limits = limits;
  }

  parse(buf: Buffer, start: number, cursor: ParseCursor): BinaryResponse | undefined {
    const total = packetLength(buf, start, B.BINARY_RESPONSE, this.limits, cursor);
    if (total === 0) return undefined;
    const extrasEnd = start + BINARY_HEADER_BYTES + buf[start + AT_EXTRAS_LENGTH]!;
    const keyEnd = extrasEnd + u16(buf, start + AT_KEY_LENGTH);
    const end = start + total;
    cursor.end = end;
    const skipped = (cursor.skip ?? 0) > 0;
    return {
      magic: B.BINARY_RESPONSE,
      opcode: buf[start + AT_OPCODE]!,
      dataType: buf[start + AT_DATA_TYPE]!,
      status: u16(buf, start + AT_VBUCKET_OR_STATUS),
      opaque: u32(buf, start + AT_OPAQUE),
      cas: readCas(buf, start + AT_CAS),
      extras: view(buf, start + BINARY_HEADER_BYTES, extrasEnd),
      key: view(buf, extrasEnd, keyEnd),
      value: skipped ? SKIPPED_VALUE : view(buf, keyEnd, end),
    };
  }
}

/**
 * The total length of the packet at `start` once it is all in `buf`, or 0
 * after setting `cursor.need` (24 for the header, then header plus body).
 * The header is checked as soon as it is complete, so a packet that breaks a
 * bound is refused before any of its body is buffered. A value over the limit
 * is refused too, or with `limits.skipOversizeValues` left out of the returned
 * length: `cursor.skip` has the decoder drop it by its length (memcached
 * swallows a value too large to store the same way). `cursor.shed` skips a
 * value of any length the same way (the decoder has no room to hold it).
 */
function packetLength(
  buf: Buffer,
  start: number,
  magic: number,
  limits: Limits,
  cursor: ParseCursor,
): number {
  const available = buf.length - start;
  if (available > 0 && buf[start] !== magic) {
    throw protocolError(magicProblem(buf[start] ?? 0, magic), buf, start);
  }
  if (available < BINARY_HEADER_BYTES) {
    cursor.need = BINARY_HEADER_BYTES;
    return 0;
  }
  const keyLength = u16(buf, start + AT_KEY_LENGTH);
  const extrasLength = buf[start + AT_EXTRAS_LENGTH]!;
  const bodyLength = u32(buf, start + AT_BODY_LENGTH);
  if (extrasLength + keyLength > bodyLength) {
    throw protocolError(
      `binary packet body of ${bodyLength} bytes cannot hold ${extrasLength} bytes of extras and a ${keyLength}-byte key`,
      buf,
      start + AT_BODY_LENGTH,
      start,
    );
  }
  if (keyLength > limits.maxKeyBytes) {
    throw protocolError(
      `binary packet key of ${keyLength} bytes is longer than ${limits.maxKeyBytes}`,
      buf,
      start + AT_KEY_LENGTH,
      start,
    );
  }
  const valueLength = bodyLength - extrasLength - keyLength;
  if (valueLength > limits.maxValueBytes && limits.skipOversizeValues !== true) {
    throw protocolError(
      `binary packet value of ${valueLength} bytes is larger than ${limits.maxValueBytes}`,
      buf,
      start + AT_BODY_LENGTH,
      start,
    );
  }
  const shed = cursor.shed === true && limits.skipOversizeValues === true;
  const skip = valueLength > limits.maxValueBytes || shed ? valueLength : 0;
  const total = BINARY_HEADER_BYTES + bodyLength - skip;
  if (available < total) {
    cursor.need = total;
    return 0;
  }
  cursor.skip = skip;
  return total;
}

function magicProblem(found: number, expected: number): string {
  const hex = `0x${found.toString(16).padStart(2, '0')}`;
  const want = expected === B.BINARY_REQUEST ? 'request' : 'response';
  if (found === B.BINARY_REQUEST) return `binary request (magic ${hex}) where a ${want} was expected`;
  if (found === B.BINARY_RESPONSE) return `binary response (magic ${hex}) where a ${want} was expected`;
  return `not a binary ${want}: magic byte ${hex}`;
}

function view(buf: Buffer, from: number, to: number): Buffer {
  return from === to ? EMPTY : buf.subarray(from, to);
}

/** Most packets carry no CAS; reading two words first avoids a bigint allocation for them. */
function readCas(buf: Buffer, at: number): bigint {
  if (u32(buf, at) === 0 && u32(buf, at + 4) === 0) return ZERO_CAS;
  return buf.readBigUInt64BE(at);
}

// Header fields are read byte by byte: once 24 bytes are known to be there,
// plain indexing skips the bounds and type checks of Buffer's readUInt*BE.
function u16(buf: Buffer, at: number): number {
  return (buf[at]! << 8) | buf[at + 1]!;
}

function u32(buf: Buffer, at: number): number {
  return buf[at]! * 0x1000000 + ((buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!);
}

// ---------------------------------------------------------------------------
// Encoders. Each returns the parts of one packet: header, extras and key in
// one Buffer, then the value as the caller's own Buffer (not copied) when it
// is not empty, ready for a corked writev. Out-of-range numbers (opcode over
// 0xff, key over 65535 bytes, extras over 255, negative expirations, CAS
// beyond 64 bits) throw RangeError: they are programming errors, not input.

export function encodeBinaryRequest(req: BinaryRequestInit): Buffer[] {
  return encodePacket(B.BINARY_REQUEST, req.vbucket ?? 0, req);
}

export function encodeBinaryResponse(res: BinaryResponseInit): Buffer[] {
  return encodePacket(B.BINARY_RESPONSE, res.status ?? BinaryStatus.NoError, res);
}

function encodePacket(magic: number, word: number, p: BinaryPacketInit): Buffer[] {
  const extras = p.extras ?? EMPTY;
  const key = p.key ?? EMPTY;
  const value = p.value ?? EMPTY;
  const head = writeHead(magic, p.opcode, extras.length, key, value.length, word, p.opaque ?? 0, p.cas ?? 0n);
  if (p.dataType !== undefined) head.writeUInt8(p.dataType, AT_DATA_TYPE);
  extras.copy(head, BINARY_HEADER_BYTES);
  return parts(head, value);
}

/**
 * A header plus room for `extrasLength` bytes of extras (left for the caller
 * to fill) and the key. The buffer is not zero-filled: every byte is written.
 */
function writeHead(
  magic: number,
  opcode: number,
  extrasLength: number,
  key: Buffer,
  valueLength: number,
  word: number,
  opaque: number,
  cas: bigint,
): Buffer {
  const head = Buffer.allocUnsafe(BINARY_HEADER_BYTES + extrasLength + key.length);
  head.writeUInt8(magic, 0);
  head.writeUInt8(opcode, AT_OPCODE);
  head.writeUInt16BE(key.length, AT_KEY_LENGTH);
  head.writeUInt8(extrasLength, AT_EXTRAS_LENGTH);
  head.writeUInt8(BinaryDataType.Raw, AT_DATA_TYPE);
  head.writeUInt16BE(word, AT_VBUCKET_OR_STATUS);
  head.writeUInt32BE(extrasLength + key.length + valueLength, AT_BODY_LENGTH);
  head.writeUInt32BE(opaque, AT_OPAQUE);
  if (cas === 0n) {
    head.writeUInt32BE(0, AT_CAS);
    head.writeUInt32BE(0, AT_CAS + 4);
  } else {
    head.writeBigUInt64BE(cas, AT_CAS);
  }
  key.copy(head, BINARY_HEADER_BYTES + extrasLength);
  return head;
}

function parts(head: Buffer, value: Buffer): Buffer[] {
  return value.length === 0 ? [head] : [head, value];
}

function request(opcode: number, extrasLength: number, key: Buffer, opaque: number, cas = 0n): Buffer {
  return writeHead(B.BINARY_REQUEST, opcode, extrasLength, key, 0, 0, opaque, cas);
}

/** Get, GetQ, GetK, GetKQ: no extras, a key, no value (section 4.2). */
export function encodeBinaryGet(opcode: BinaryGetOpcode, key: Buffer, opaque = 0): Buffer[] {
  return [request(opcode, 0, key, opaque)];
}

/**
 * Set, Add, Replace and their quiet forms: flags and expiration extras, key,
 * value (section 4.3). A non-zero `cas` makes the store conditional on it.
 */
export function encodeBinaryStore(
  opcode: BinaryStoreOpcode,
  key: Buffer,
  value: Buffer,
  flags: number,
  exptime: number,
  cas = 0n,
  opaque = 0,
): Buffer[] {
  const head = writeHead(B.BINARY_REQUEST, opcode, 8, key, value.length, 0, opaque, cas);
  head.writeUInt32BE(flags, BINARY_HEADER_BYTES);
  head.writeUInt32BE(exptime, BINARY_HEADER_BYTES + 4);
  return parts(head, value);
}

/** Append, Prepend and their quiet forms: no extras, key, value (section 4.10). */
export function encodeBinaryConcat(
  opcode: BinaryConcatOpcode,
  key: Buffer,
  value: Buffer,
  cas = 0n,
  opaque = 0,
): Buffer[] {
  return parts(writeHead(B.BINARY_REQUEST, opcode, 0, key, value.length, 0, opaque, cas), value);
}

/** Delete, DeleteQ: key only (section 4.4); memcached honours a non-zero CAS. */
export function encodeBinaryDelete(opcode: BinaryDeleteOpcode, key: Buffer, cas = 0n, opaque = 0): Buffer[] {
  return [request(opcode, 0, key, opaque, cas)];
}

/**
 * Increment, Decrement and their quiet forms: delta, initial value and
 * expiration extras, key (section 4.5). `exptime` BINARY_NO_AUTO_CREATE makes
 * a missing counter an error instead of creating it with `initial`.
 */
export function encodeBinaryArithmetic(
  opcode: BinaryArithmeticOpcode,
  key: Buffer,
  delta: bigint,
  initial: bigint,
  exptime: number,
  cas = 0n,
  opaque = 0,
): Buffer[] {
  const head = request(opcode, 20, key, opaque, cas);
  head.writeBigUInt64BE(delta, BINARY_HEADER_BYTES);
  head.writeBigUInt64BE(initial, BINARY_HEADER_BYTES + 8);
  head.writeUInt32BE(exptime, BINARY_HEADER_BYTES + 16);
  return [head];
}

/** Touch, GAT, GATQ, GATK, GATKQ: an expiration extra and a key. */
export function encodeBinaryTouch(
  opcode: BinaryTouchOpcode,
  key: Buffer,
  exptime: number,
  opaque = 0,
): Buffer[] {
  const head = request(opcode, 4, key, opaque);
  head.writeUInt32BE(exptime, BINARY_HEADER_BYTES);
  return [head];
}

/** Flush, FlushQ: the expiration extra is optional (section 4.7); without it the flush is immediate. */
export function encodeBinaryFlush(
  opcode: BinaryFlushOpcode = BinaryOpcode.Flush,
  exptime?: number,
  opaque = 0,
): Buffer[] {
  if (exptime === undefined) return [request(opcode, 0, EMPTY, opaque)];
  const head = request(opcode, 4, EMPTY, opaque);
  head.writeUInt32BE(exptime, BINARY_HEADER_BYTES);
  return [head];
}

/** Noop: answered at once, after every pending quiet response (section 4.8). */
export function encodeBinaryNoop(opaque = 0): Buffer[] {
  return [request(BinaryOpcode.Noop, 0, EMPTY, opaque)];
}

export function encodeBinaryVersion(opaque = 0): Buffer[] {
  return [request(BinaryOpcode.Version, 0, EMPTY, opaque)];
}

export function encodeBinaryQuit(opcode: BinaryQuitOpcode = BinaryOpcode.Quit, opaque = 0): Buffer[] {
  return [request(opcode, 0, EMPTY, opaque)];
}

/** Stat: the optional key names a group (`settings`, `slabs`, `items`, ...) (section 4.11). */
export function encodeBinaryStat(group: Buffer = EMPTY, opaque = 0): Buffer[] {
  return [request(BinaryOpcode.Stat, 0, group, opaque)];
}

/** Verbosity: a 4-byte level extra. */
export function encodeBinaryVerbosity(level: number, opaque = 0): Buffer[] {
  const head = request(BinaryOpcode.Verbosity, 4, EMPTY, opaque);
  head.writeUInt32BE(level, BINARY_HEADER_BYTES);
  return [head];
}
