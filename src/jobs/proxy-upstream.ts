/**
 * One proxy connection to one server, serving one client connection: requests
 * are written in order and every reply frame goes to the oldest leg still
 * waiting (memcached answers a connection's requests in order), so pairing
 * needs no keys or opaques.
 *
 * A leg that waits longer than the request timeout fails alone (its client
 * gets SERVER_ERROR) and stays in line as abandoned: memcached still answers
 * it in order, and that late reply is read and thrown away, so the stream
 * stays in step for every other client's requests. A refused or broken
 * connection fails every leg in flight, and so does a server that has
 * answered nothing for several timeouts (stuck, not slow): the connection is
 * then dropped.
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
  /**
   * Whether `frame` ends this leg's reply, without acting on it: how a reply
   * that came after the leg timed out is skipped. Absent: every reply is one frame.
   */
  ends?(frame: F): boolean;
}

/** A leg in line at the server; an abandoned one timed out and waits only to have its reply skipped. */
interface Waiting<F> {
  readonly leg: Leg<F>;
  abandoned: boolean;
}

/** A server with legs waiting that has sent nothing for this many timeouts is stuck: the connection goes. */
const STUCK_TIMEOUTS = 4;

export interface UpstreamOptions {
  readonly timeoutMs: number;
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
  private readonly legs = new Ring<Waiting<F>>(64);
  /** Legs not yet timed out, oldest first by position in `legs` (the next to check). */
  private checked = 0;
  private lastHeard = 0;
  private readonly decoder: FrameDecoder<F>;
  private readonly options: UpstreamOptions;
  private down: string | undefined;
  private corked = false;

  constructor(address: string, parser: FrameParser<F>, options: UpstreamOptions) {
    this.address = address;
    this.options = options;
    this.decoder = new FrameDecoder(parser);
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
    if (this.legs.length === 0) this.lastHeard = now;
    this.legs.push({ leg, abandoned: false });
    if (!this.corked) {
      // Requests from every client this tick leave in one write (the socket's writev).
      this.corked = true;
      this.socket.cork();
      setImmediate(this.uncork);
    }
    for (const part of parts) this.socket.write(part);
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
    // Corked writes always overrun the socket's small high-water mark; only a real backlog counts.
    if (this.socket.writableLength > CONGESTED_BYTES) this.options.onCongested?.();
  };

  /**
   * Fails the legs that waited past the timeout, each alone; drops the
   * connection when the server has been silent for several timeouts.
   */
  sweep(now: number): void {
    const timeout = this.options.timeoutMs;
    if (this.legs.length === 0) return;
    if (now - this.lastHeard > timeout * STUCK_TIMEOUTS) {
      this.fail(`${this.address}: no reply within ${timeout} ms`);
      return;
    }
    // Legs were sent in order, so the ones past their time are a run from the oldest not yet failed.
    for (let i = this.checked; i < this.legs.length; i++) {
      const waiting = this.legs.at(i);
      if (waiting === undefined || now - waiting.leg.sentAt <= timeout) break;
      waiting.abandoned = true;
      this.checked = i + 1;
      waiting.leg.fail(`${this.address}: no reply within ${timeout} ms`);
    }
  }

  destroy(): void {
    this.fail(`${this.address}: connection closed by memshift`);
  }

  private onData(chunk: Buffer): void {
    if (this.down !== undefined) return;
    this.lastHeard = Date.now();
    try {
      this.decoder.push(chunk, (frame) => {
        const waiting = this.legs.peek();
        if (waiting === undefined) throw new Error('a reply no request asked for');
        const { leg } = waiting;
        const ended = waiting.abandoned ? (leg.ends?.(frame) ?? true) : leg.frame(frame);
        if (ended) {
          this.legs.shift();
          if (this.checked > 0) this.checked--;
        }
      });
    } catch (err) {
      this.fail(`${this.address}: bad reply: ${(err as Error).message}`);
    }
  }

  private fail(reason: string): void {
    if (this.down !== undefined) return;
    this.down = reason;
    this.socket.destroy();
    for (let w = this.legs.shift(); w !== undefined; w = this.legs.shift())
      if (!w.abandoned) w.leg.fail(reason);
    this.checked = 0;
    this.options.onDown?.(reason);
  }
}
