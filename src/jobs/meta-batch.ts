/**
 * Pipelined meta commands in batches, one request per batch: many quiet
 * commands followed by `mn`, whose `MN` reply closes the batch
 * (reference/memcached-protocol.txt, "Meta No-Op": "a client can pipeline
 * quiet commands and know they are done at the MN"). Copy and verify move
 * hundreds of thousands of keys a second this way, with one promise and one
 * socket write per batch instead of per key.
 */
import type { AsciiResponse, ErrorResponse, MetaResponse } from '../protocol/ascii-frames.js';
import { flagTokenNumber, keyNeedsBase64, metaKeyFits } from '../protocol/meta.js';
import { MemshiftError } from '../protocol/errors.js';
import { Connection, type ConnectionOptions } from '../net/connection.js';
import type { Endpoint } from '../net/address.js';

const CHUNK_BYTES = 64 * 1024;
/** Values at least this big are sent as their own part rather than copied into the batch. */
const SEPARATE_VALUE_BYTES = 8 * 1024;
/** Text longer than this goes through Buffer#write; shorter is copied a char at a time, which is faster. */
const SHORT_TEXT = 32;
/** Byte strings this short are copied a byte at a time (see `bytes`). */
const SHORT_BYTES = 16;
const CRLF = Buffer.from('\r\n');
const MN = Buffer.from('mn\r\n');
const MG = Buffer.from('mg ');
const BASE64_FLAG = Buffer.from(' b');
/** The flags of a batch `mg` up to its opaque's number: by value (v) or size (s), with or without CAS (c). */
const MG_TAILS = {
  value: { cas: Buffer.from(' v f t u q c O'), plain: Buffer.from(' v f t u q O') },
  size: { cas: Buffer.from(' s f t u q c O'), plain: Buffer.from(' s f t u q O') },
} as const;
const LOOK_TAIL = Buffer.from(' t u q c O');

/** Builds one batch's bytes: text copied into 64 KiB chunks, big values passed through uncopied. */
export class RequestBuilder {
  private readonly parts: Buffer[] = [];
  private buf = Buffer.allocUnsafe(CHUNK_BYTES);
  private pos = 0;

  /** Text as latin1: one byte per char. */
  ascii(text: string): void {
    const n = text.length;
    this.ensure(n);
    if (n > SHORT_TEXT) {
      this.pos += this.buf.write(text, this.pos, 'latin1');
      return;
    }
    // A byte array keeps the low 8 bits of each char, as latin1 encoding does.
    const buf = this.buf;
    const at = this.pos;
    for (let i = 0; i < n; i++) buf[at + i] = text.charCodeAt(i);
    this.pos = at + n;
  }

  /** A number in decimal, as `String(n)` writes it, without making the string for a whole one. */
  number(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) {
      this.ascii(String(n));
      return;
    }
    let digits = 1;
    for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    this.ensure(digits);
    const buf = this.buf;
    let at = this.pos + digits;
    this.pos = at;
    let rest = n;
    do {
      buf[--at] = 0x30 + (rest % 10);
      rest = Math.floor(rest / 10);
    } while (rest > 0);
  }

  bytes(bytes: Buffer): void {
    if (bytes.length >= SEPARATE_VALUE_BYTES) {
      this.flush();
      this.parts.push(bytes);
      return;
    }
    const n = bytes.length;
    this.ensure(n);
    const buf = this.buf;
    const at = this.pos;
    // A few bytes (a key, a piece of a command) are copied faster by hand; more by
    // TypedArray#set, a plain copy without Buffer#copy's argument checks.
    if (n <= SHORT_BYTES) for (let i = 0; i < n; i++) buf[at + i] = bytes[i]!;
    else buf.set(bytes, at);
    this.pos = at + n;
  }

  /** Writes the key as a word; base64 (true returned) when memcached could not read it raw. */
  key(key: Buffer): boolean {
    if (keyNeedsBase64(key)) {
      this.ascii(key.toString('base64'));
      return true;
    }
    this.bytes(key);
    return false;
  }

  finish(): Buffer[] {
    this.flush();
    this.parts.push(MN);
    return this.parts;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
  }

  private flush(): void {
    if (this.pos === 0) return;
    this.parts.push(this.buf.subarray(0, this.pos));
    this.buf = this.buf.subarray(this.pos);
    this.pos = 0;
    if (this.buf.length < 512) this.buf = Buffer.allocUnsafe(CHUNK_BYTES);
  }
}

/** What a batch of `mg` found: per key of the batch, by position. */
export interface FetchedBatch {
  readonly hit: Uint8Array;
  /** 1 for a key no meta command can name (see `metaKeyFits`): not asked, not a hit. */
  readonly unsupported: Uint8Array;
  readonly flags: Uint32Array;
  /** Remaining TTL in seconds as the server counts it, -1 for never. */
  readonly ttl: Int32Array;
  /** Value length. */
  readonly size: Uint32Array;
  /** The values, when asked for (views of the reply's bytes). */
  readonly values: (Buffer | undefined)[];
  /** The items' CAS values as the server wrote them, when asked for. */
  readonly cas: (string | undefined)[];
  hits: number;
  unsupportedCount: number;
}

/** A server's error reply to one command of a batch. */
export type BatchError = ErrorResponse;

/**
 * A few pipelined connections to one server, used round robin. A batch that
 * went wrong as a whole (an unexpected reply) may leave the rest of its
 * replies on the wire, so that connection is dropped and replaced.
 */
export class BatchLink {
  private readonly conns: Connection[];
  private next = 0;

  constructor(
    readonly endpoint: Endpoint,
    private readonly options: Partial<ConnectionOptions>,
    size = 2,
  ) {
    this.conns = Array.from({ length: Math.max(1, size) }, () => new Connection(endpoint, options));
  }

  get address(): string {
    return this.endpoint.address;
  }

  /**
   * Fetches flags, remaining TTL and value (or only its size: `withValues`
   * may say per key, 1 for a value) of every key, and the CAS value when
   * `withCas`, without bumping them in the LRU (`u`), so a copy does not
   * make cold keys look hot on the production server. A key no meta command
   * can name is not sent; it comes back marked `unsupported`.
   */
  async fetch(
    keys: readonly Buffer[],
    withValues: boolean | Uint8Array,
    withCas = false,
  ): Promise<FetchedBatch> {
    const tails = MG_TAILS.value[withCas ? 'cas' : 'plain'];
    const sizes = MG_TAILS.size[withCas ? 'cas' : 'plain'];
    const tail =
      withValues === true
        ? (): Buffer => tails
        : withValues === false
          ? (): Buffer => sizes
          : (j: number): Buffer => (withValues[j] === 1 ? tails : sizes);
    return this.ask(keys, tail, withValues !== false, withCas);
  }

  /**
   * Whether each key is there, with its CAS value and remaining TTL, and
   * nothing else (`mg <key> t u q c`): what a copy needs to know that an
   * item it read is still the same, in fewer bytes each way than `fetch`.
   * `flags` and `size` stay 0.
   */
  async look(keys: readonly Buffer[]): Promise<FetchedBatch> {
    return this.ask(keys, () => LOOK_TAIL, false, true);
  }

  /** Sends `mg <key>[ b]<tail(j)><j>` for every key that fits and reads the replies into place. */
  private async ask(
    keys: readonly Buffer[],
    tail: (j: number) => Buffer,
    withValues: boolean,
    withCas: boolean,
  ): Promise<FetchedBatch> {
    const n = keys.length;
    const out: FetchedBatch = {
      hit: new Uint8Array(n),
      unsupported: new Uint8Array(n),
      flags: new Uint32Array(n),
      ttl: new Int32Array(n),
      size: new Uint32Array(n),
      values: withValues ? new Array<Buffer | undefined>(n) : [],
      cas: withCas ? new Array<string | undefined>(n) : [],
      hits: 0,
      unsupportedCount: 0,
    };
    const b = new RequestBuilder();
    let asked = 0;
    for (let j = 0; j < n; j++) {
      if (!metaKeyFits(keys[j]!)) {
        out.unsupported[j] = 1;
        out.unsupportedCount++;
        continue;
      }
      asked++;
      b.bytes(MG);
      if (b.key(keys[j]!)) b.bytes(BASE64_FLAG);
      b.bytes(tail(j));
      b.number(j);
      b.bytes(CRLF);
    }
    if (asked === 0) return out;
    await this.send(b.finish(), 'mg batch', (frame) => {
      let j = -1;
      let flags = 0;
      let ttl = -1;
      let cas: string | undefined;
      let size = frame.value?.length ?? 0;
      for (const token of frame.flags) {
        const c = token.charCodeAt(0);
        if (c === 0x4f)
          j = flagTokenNumber(token); // O
        else if (c === 0x66)
          flags = flagTokenNumber(token); // f
        else if (c === 0x74)
          ttl = flagTokenNumber(token); // t
        else if (c === 0x73)
          size = flagTokenNumber(token); // s
        else if (c === 0x63) cas = token.slice(1); // c
      }
      if (j < 0 || j >= n || (frame.code !== 'VA' && frame.code !== 'HD')) {
        throw new MemshiftError(
          'MEMSHIFT_ERR_PROTOCOL',
          `${this.address}: unexpected ${frame.code} in a batch`,
        );
      }
      out.hit[j] = 1;
      out.hits++;
      out.flags[j] = flags >>> 0;
      out.ttl[j] = ttl;
      out.size[j] = size;
      if (frame.value !== undefined) out.values[j] = frame.value;
      if (withCas) out.cas[j] = cas;
    });
    return out;
  }

  /**
   * Sends a batch built by the caller and hands each reply before `MN` to
   * `onReply`. A server error reply goes to `onError` when given (in a
   * batch it answers one command: `SERVER_ERROR object too large for cache`
   * after memcached swallowed that command's data block); without `onError`,
   * or when a handler throws, the batch rejects once its `MN` arrived.
   */
  async send(
    parts: Buffer[],
    doing: string,
    onReply: (frame: MetaResponse) => void,
    onError?: (frame: BatchError) => void,
  ): Promise<void> {
    const conn = this.pick();
    let failure: unknown;
    const sink = (frame: AsciiResponse): boolean => {
      if (frame.kind === 'meta' && frame.code === 'MN') return true;
      if (failure !== undefined) return false;
      try {
        if (frame.kind === 'meta') onReply(frame);
        else if (frame.kind === 'error' && onError) onError(frame);
        else {
          const what = frame.kind === 'error' ? `${frame.error} ${frame.message}`.trim() : frame.kind;
          throw new MemshiftError(
            'MEMSHIFT_ERR_SERVER_REPLY',
            `${this.address} replied to a ${doing}: ${what}`,
          );
        }
      } catch (err) {
        failure = err;
      }
      return false;
    };
    // A timeout or a lost connection rejects here; the connection reconnects by itself.
    await conn.request(parts, 'batch', doing, sink);
    if (failure !== undefined) {
      // The replies were read up to MN, but a reply we could not place may
      // mean the server read our bytes differently: start afresh.
      this.replace(conn);
      throw failure;
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.conns.map((c) => c.close()));
  }

  destroy(): void {
    for (const c of this.conns) c.destroy();
  }

  private pick(): Connection {
    const conn = this.conns[this.next++ % this.conns.length]!;
    return conn;
  }

  private replace(conn: Connection): void {
    const i = this.conns.indexOf(conn);
    conn.destroy();
    if (i >= 0) this.conns[i] = new Connection(this.endpoint, this.options);
  }
}

/** Ends a value in a batch. */
export { CRLF };
