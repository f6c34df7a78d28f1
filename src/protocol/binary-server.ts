/**
 * A client's binary stream read the way memcached 1.6.18 reads it
 * (proto_bin.c, dispatch_bin_command and process_bin_update), for a proxy
 * that must answer as memcached would where memcached answers by itself:
 *   - a key over 250 bytes: status 0x0004 "Invalid arguments", then the
 *     connection is closed;
 *   - a store whose item would exceed the server's item_size_max: status
 *     0x0003 "Too large.", the value swallowed unread, and (for a set) the
 *     key's old value removed.
 * Everything else is read by the shared request parser.
 */
import {
  BinaryOpcode as Op,
  BinaryRequestParser,
  BinaryStatus,
  encodeBinaryResponse,
  type BinaryRequest,
} from './binary.js';
import { itemTooLarge } from './ascii-server.js';
import type { FrameParser, ParseCursor } from './decoder.js';
import type { Limits } from './limits.js';

export type BinaryServerFrame =
  | { readonly kind: 'request'; readonly request: BinaryRequest }
  | {
      readonly kind: 'answer';
      readonly reply: Buffer[];
      readonly close: boolean;
      /** A set too large for the server: memcached removes the key's old value. */
      readonly evict: Buffer | undefined;
    }
  | { readonly kind: 'skipped'; readonly bytes: number };

export interface BinaryServerOptions {
  readonly limits: Limits;
  /** `item_size_max` of the server that would store `key`. */
  itemSizeMax(key: Buffer): number;
}

const HEADER = 24;
const KEY_MAX = 250;

/** Opcodes that store a value, and whether their extras carry client flags. */
const STORES: ReadonlyMap<number, { flags: boolean; set: boolean }> = new Map([
  [Op.Set, { flags: true, set: true }],
  [Op.SetQ, { flags: true, set: true }],
  [Op.Add, { flags: true, set: false }],
  [Op.AddQ, { flags: true, set: false }],
  [Op.Replace, { flags: true, set: false }],
  [Op.ReplaceQ, { flags: true, set: false }],
  [Op.Append, { flags: false, set: false }],
  [Op.AppendQ, { flags: false, set: false }],
  [Op.Prepend, { flags: false, set: false }],
  [Op.PrependQ, { flags: false, set: false }],
]);

function errorPacket(opcode: number, opaque: number, status: number, message: string): Buffer[] {
  return encodeBinaryResponse({ opcode, opaque, status, value: Buffer.from(message, 'latin1') });
}

export class BinaryServerReader implements FrameParser<BinaryServerFrame> {
  readonly limits: Limits;
  private readonly options: BinaryServerOptions;
  private readonly parser: BinaryRequestParser;
  private swallow = 0;

  constructor(options: BinaryServerOptions) {
    this.options = options;
    this.limits = options.limits;
    this.parser = new BinaryRequestParser(options.limits);
  }

  /** Bytes of a refused value still to come and be thrown away. */
  get swallowing(): number {
    return this.swallow;
  }

  parse(buf: Buffer, start: number, cursor: ParseCursor): BinaryServerFrame | undefined {
    if (this.swallow > 0) {
      const bytes = Math.min(this.swallow, buf.length - start);
      this.swallow -= bytes;
      cursor.end = start + bytes;
      return { kind: 'skipped', bytes };
    }
    if (buf.length - start < HEADER) {
      cursor.need = HEADER;
      return undefined;
    }
    // Anything but a request's magic is the shared parser's to refuse.
    if (buf[start] !== 0x80) return this.request(buf, start, cursor);
    const opcode = buf[start + 1]!;
    const keyLength = buf.readUInt16BE(start + 2);
    const extrasLength = buf[start + 4]!;
    const bodyLength = buf.readUInt32BE(start + 8);
    const opaque = buf.readUInt32BE(start + 12);
    if (keyLength > KEY_MAX) {
      cursor.end = buf.length;
      return {
        kind: 'answer',
        reply: errorPacket(opcode, opaque, BinaryStatus.InvalidArguments, 'Invalid arguments'),
        close: true,
        evict: undefined,
      };
    }
    const store = STORES.get(opcode);
    const valueLength = bodyLength - extrasLength - keyLength;
    if (store === undefined || valueLength < 0) return this.request(buf, start, cursor);
    const keyAt = start + HEADER + extrasLength;
    if (buf.length < keyAt + keyLength) {
      cursor.need = HEADER + extrasLength + keyLength;
      return undefined;
    }
    const key = buf.subarray(keyAt, keyAt + keyLength);
    const flags = store.flags && extrasLength >= 4 ? buf.readUInt32BE(start + HEADER) : 0;
    if (!itemTooLarge(this.options.itemSizeMax(key), keyLength, flags, valueLength + 2)) {
      return this.request(buf, start, cursor);
    }
    // Too large even for a quiet store: the error always shows (proto_bin.c, write_bin_error).
    this.swallow = valueLength;
    cursor.end = keyAt + keyLength;
    return {
      kind: 'answer',
      reply: errorPacket(opcode, opaque, BinaryStatus.ValueTooLarge, 'Too large.'),
      close: false,
      evict: store.set ? Buffer.from(key) : undefined,
    };
  }

  private request(buf: Buffer, start: number, cursor: ParseCursor): BinaryServerFrame | undefined {
    const request = this.parser.parse(buf, start, cursor);
    return request === undefined ? undefined : { kind: 'request', request };
  }
}
