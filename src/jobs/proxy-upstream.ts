/**
 * One proxy connection to one server, serving one client connection: requests
 * are written in order and every reply frame goes to the oldest leg still
 * waiting (memcached answers a connection's requests in order), so pairing
 * needs no keys or opaques.
 *
 * A leg that waits longer than the request timeout, a refused connection or
 * a broken one fails every leg in flight with a reason (the client then gets
 * SERVER_ERROR), and the connection is dropped: after a timeout the stream
 * is out of step and cannot be trusted again.
 */
import { connect, type Socket } from 'node:net';
import { parseEndpoint } from '../net/address.js';
import { Ring } from '../net/ring.js';
import { FrameDecoder, type FrameParser } from '../protocol/decoder.js';

/** The part of a client request sent to one server, waiting for its reply. */
export interface Leg<F> {
  /** A reply frame; true when the leg's reply is complete. */
  frame(frame: F): boolean;
  /** No (complete) reply will come. */
  fail(reason: string): void;
  /** Set by the upstream when written, for the timeout sweep. */
  sentAt: number;
}

/** Sees the bytes of an upstream connection both ways (shadow mode feeds the operation extractor). */
export interface UpstreamTap {
  sent(chunk: Buffer): void;
  received(chunk: Buffer): void;
  closed(): void;
}

export interface UpstreamOptions {
  readonly timeoutMs: number;
  readonly tap?: UpstreamTap | undefined;
  /** Called once when the connection is given up (error, close, timeout). */
  readonly onDown?: ((reason: string) => void) | undefined;
  /** Called when a write leaves the socket's buffer over its high-water mark. */
  readonly onCongested?: (() => void) | undefined;
  /** Called when the socket drains after a full write buffer. */
  readonly onDrain?: (() => void) | undefined;
}

/** Bytes waiting in a server socket's buffer beyond which clients stop being read. */
const CONGESTED_BYTES = 4 * 1024 * 1024;

export class Upstream<F> {
  readonly address: string;
  private readonly socket: Socket;
  private readonly legs = new Ring<Leg<F>>(64);
  private readonly decoder: FrameDecoder<F>;
  private readonly options: UpstreamOptions;
  private down: string | undefined;
  private corked = false;
  /** What was written this batch, for the tap. */
  private readonly tapped: Buffer[] | undefined;
  private tappedBytes = 0;

  constructor(address: string, parser: FrameParser<F>, options: UpstreamOptions) {
    this.address = address;
    this.options = options;
    this.decoder = new FrameDecoder(parser);
    this.tapped = options.tap === undefined ? undefined : [];
    const endpoint = parseEndpoint(address);
    this.socket = connect({ host: endpoint.host, port: endpoint.port, noDelay: true });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err) => this.fail(`${address}: ${err.message}`));
    this.socket.on('close', () => this.fail(`${address}: connection closed`));
    if (options.onDrain) this.socket.on('drain', options.onDrain);
  }

  /** Given up: new requests need a new connection. */
  get dead(): boolean {
    return this.down !== undefined;
  }

  get inFlight(): number {
    return this.legs.length;
  }

  send(parts: readonly Buffer[], leg: Leg<F>, now: number): void {
    if (this.down !== undefined) {
      leg.fail(this.down);
      return;
    }
    leg.sentAt = now;
    this.legs.push(leg);
    if (!this.corked) {
      // Requests from every client this tick leave in one write (the socket's writev).
      this.corked = true;
      this.socket.cork();
      setImmediate(this.uncork);
    }
    const tapped = this.tapped;
    for (const part of parts) {
      this.socket.write(part);
      if (tapped !== undefined) {
        tapped.push(part);
        this.tappedBytes += part.length;
      }
    }
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
    const tapped = this.tapped;
    if (tapped !== undefined && tapped.length > 0) {
      // One piece per batch: the tap's parser then reads the requests in place instead of joining parts.
      this.options.tap?.sent(
        tapped.length === 1 ? (tapped[0] as Buffer) : Buffer.concat(tapped, this.tappedBytes),
      );
      tapped.length = 0;
      this.tappedBytes = 0;
    }
    // Corked writes always overrun the socket's small high-water mark; only a real backlog counts.
    if (this.socket.writableLength > CONGESTED_BYTES) this.options.onCongested?.();
  };

  /** Fails everything if the oldest leg has waited past the timeout. */
  sweep(now: number): void {
    const head = this.legs.peek();
    if (head !== undefined && now - head.sentAt > this.options.timeoutMs) {
      this.fail(`${this.address}: no reply within ${this.options.timeoutMs} ms`);
    }
  }

  destroy(): void {
    this.fail(`${this.address}: connection closed by memshift`);
  }

  private onData(chunk: Buffer): void {
    if (this.down !== undefined) return;
    this.options.tap?.received(chunk);
    try {
      this.decoder.push(chunk, (frame) => {
        const leg = this.legs.peek();
        if (leg === undefined) throw new Error('a reply no request asked for');
        if (leg.frame(frame)) this.legs.shift();
      });
    } catch (err) {
      this.fail(`${this.address}: bad reply: ${(err as Error).message}`);
    }
  }

  private fail(reason: string): void {
    if (this.down !== undefined) return;
    this.down = reason;
    this.socket.destroy();
    for (let leg = this.legs.shift(); leg !== undefined; leg = this.legs.shift()) leg.fail(reason);
    this.options.tap?.closed();
    this.options.onDown?.(reason);
  }
}
