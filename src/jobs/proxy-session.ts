/**
 * What every proxied client connection shares, whatever its protocol: the
 * replies are assembled in slots, one per request, and written strictly in
 * request order (memcached answers a connection in order, and clients rely
 * on it), however the request was split across servers.
 *
 * Each client has its own bounds, checked request by request: requests in
 * flight, and reply bytes (those in its socket's buffer, and those its
 * requests in flight are expected to bring, judged by its recent replies).
 * Past a bound the requests already read wait here, unsent, and its socket
 * is not read until it drains: a client that does not read its replies
 * stalls only itself, and the shared server connections never carry more of
 * its replies than its bound.
 */
import type { Socket } from 'node:net';
import { closeSoon, type ConnectionHandler } from '../net/listener.js';
import { Ring } from '../net/ring.js';
import type { Pool } from '../topology/pool.js';
import type { PairedOperations } from '../ops/paired.js';
import type { Upstream } from './proxy-upstream.js';

export type ProxyMode = 'shadow' | 'warm' | 'dual';

/** A value read from the secondary on a warm-mode miss, already added to the primary. */
export interface WarmItem {
  readonly value: Buffer;
  readonly flags: number;
}

export interface ProxyCounters {
  requests: number;
  /** Requests answered with SERVER_ERROR (or a binary error status) because the primary failed. */
  primaryErrors: number;
  /** Connections closed for bytes that are not memcached requests. */
  protocolErrors: number;
  /** Legs sent to the secondary synchronously (dual, warm deletes) and how many failed or were skipped. */
  secondarySent: number;
  secondaryFailed: number;
  secondarySkipped: number;
  /** Warm mode: misses on the primary looked up on the secondary, and how many it held. */
  warmLookups: number;
  warmHits: number;
  /** Times reading from a client paused for backpressure. */
  paused: number;
  /** Connections closed because a request stayed incomplete past the partial-request timeout. */
  partialTimeouts: number;
}

/** What sessions need from the proxy that owns them. */
export interface ProxyContext {
  readonly mode: ProxyMode;
  readonly primary: Pool;
  readonly secondary: Pool;
  readonly timeoutMs: number;
  readonly secondaryTimeoutMs: number;
  readonly maxInFlight: number;
  /** Reply bytes a client may have buffered and coming (its socket's backlog plus the expected replies in flight). */
  readonly maxClientBytes: number;
  /** A request begun but not finished for this long closes its connection (0: never). */
  readonly partialTimeoutMs: number;
  readonly counters: ProxyCounters;
  /** The proxy's own figures, answered to a client's `stats` (name, value). */
  figures(): Array<[string, string]>;
  /** `item_size_max` of a primary server: a larger store is refused as memcached refuses it. */
  itemSizeMax(serverIndex: number): number;
  /**
   * Shadow mode: per primary server, where the requests it answered go with
   * their replies, to become operations replayed on the secondary (empty
   * when nothing is shadowed).
   */
  readonly shadows: readonly PairedOperations[];
  /** Whether synchronous secondary writes go to this server now (it was not failing recently). */
  secondaryUsable(serverIndex: number): boolean;
  /** A synchronous secondary write to this server failed or was skipped: the key must be invalidated later. */
  secondaryMissed(serverIndex: number, key: Buffer, reason: string | undefined): void;
  /** Warm mode: a deletion passed through; fills of this key that started earlier must not land. */
  deleted(key: Buffer): void;
  /** Warm mode: the key missed on the primary; its value from the secondary (now added to the primary), if any. */
  warm(key: Buffer): Promise<WarmItem | undefined>;
  /**
   * The upstream connection to a server for a session: shared by every
   * session of that protocol (as twemproxy shares server connections), so
   * requests of many clients go out in one write. A session always gets the
   * same one, which keeps its requests to that server in order.
   */
  upstream(
    protocol: 'ascii' | 'binary',
    side: 'primary' | 'secondary',
    index: number,
    sessionId: number,
  ): Upstream<unknown>;
  /** Some primary upstream's write buffer is full. */
  congested(): boolean;
  /** Sessions paused for backpressure, resumed when an upstream drains. */
  readonly paused: Set<{ maybeResume(): void }>;
}

/** One request's reply, written when every leg it waits for is done. */
export interface Slot {
  pending: number;
  parts: Buffer[];
  /** Close the client connection once this slot is written (quit, a protocol error). */
  close: boolean;
  /** Builds `parts` when the last leg is done (merging a split multi-get). */
  build: (() => void) | undefined;
}

export function newSlot(): Slot {
  return { pending: 0, parts: [], close: false, build: undefined };
}

/** Requests a new client may have in flight before its replies show how large they are. */
const INITIAL_WINDOW = 16;

export abstract class ProxySession<F> implements ConnectionHandler {
  protected readonly ctx: ProxyContext;
  protected readonly socket: Socket;
  protected readonly id: number;
  private readonly slots = new Ring<Slot>(64);
  private flushQueued = false;
  private reading = true;
  private finishing = false;
  private ended = false;
  private readonly closed: Promise<void>;
  private partialTimer: NodeJS.Timeout | undefined;
  private partialOffset = -1;
  /** Requests read but held back by the bounds, issued in order as room appears. */
  private readonly held = new Ring<() => void>(16);
  /**
   * Expected bytes of one reply: the larger of the last reply and half the
   * previous estimate, so large replies shrink the window at once and small
   * ones widen it within a few replies. A new client starts at a window of 16.
   */
  private replyEstimate: number;

  constructor(ctx: ProxyContext, socket: Socket, id: number) {
    this.ctx = ctx;
    this.socket = socket;
    this.id = id;
    this.replyEstimate = ctx.maxClientBytes / INITIAL_WINDOW;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    socket.on('close', () => this.teardown());
    socket.on('drain', () => this.maybeResume());
  }

  /** Handles one chunk from the client; protocol sessions parse it and call `send`. */
  protected abstract parseChunk(chunk: Buffer): void;
  /** Bytes of a request begun but not complete, and the stream offset where it began. */
  protected abstract partial(): { bytes: number; offset: number };
  protected abstract readonly protocol: 'ascii' | 'binary';

  /** Starts reading; the first chunk is handed over by whoever picked the protocol. */
  start(first: Buffer | undefined): void {
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    if (first !== undefined) this.onData(first);
  }

  finish(): Promise<void> {
    this.finishing = true;
    // Requests read but not sent are dropped, as a stopping server drops what it did not start.
    this.held.drain();
    this.socket.pause();
    this.maybeEnd();
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.ended || this.finishing) return;
    this.parseChunk(chunk);
    this.watchPartial();
    if (this.held.length > 0 || !this.hasRoom() || this.socket.writableNeedDrain || this.ctx.congested()) {
      this.pause();
    }
  }

  /** Requests this client may have in flight now: its bytes bound over its expected reply size. */
  private window(): number {
    const byBytes = Math.floor(this.ctx.maxClientBytes / Math.max(1, this.replyEstimate));
    return Math.max(1, Math.min(this.ctx.maxInFlight, byBytes));
  }

  private hasRoom(): boolean {
    return this.slots.length < this.window() && this.socket.writableLength < this.ctx.maxClientBytes;
  }

  /** Runs a parsed request now, or holds it (in order) until this client is back within its bounds. */
  protected admit(run: () => void): void {
    if (this.held.length === 0 && this.hasRoom() && !this.ctx.congested()) run();
    else this.held.push(run);
  }

  private release(): void {
    while (
      this.held.length > 0 &&
      !this.ended &&
      !this.finishing &&
      this.hasRoom() &&
      !this.ctx.congested()
    ) {
      this.held.shift()!();
    }
    if (this.ended || this.finishing) this.held.drain();
  }

  /**
   * A request left incomplete (a set that declared 1 MiB and sent 10 bytes)
   * holds its buffer and its connection: after the partial-request timeout
   * the connection is closed. The clock restarts whenever a request
   * completes, so a steady stream of large values never trips it.
   */
  private watchPartial(): void {
    const ms = this.ctx.partialTimeoutMs;
    if (ms <= 0) return;
    const { bytes, offset } = this.partial();
    if (bytes === 0) {
      clearTimeout(this.partialTimer);
      this.partialTimer = undefined;
      return;
    }
    if (this.partialTimer !== undefined && offset === this.partialOffset) return;
    clearTimeout(this.partialTimer);
    this.partialOffset = offset;
    this.partialTimer = setTimeout(() => {
      this.partialTimer = undefined;
      // Paused by the proxy, the client could not have sent the rest: its clock starts again.
      if (!this.reading) return this.watchPartialLater();
      this.ctx.counters.partialTimeouts++;
      this.socket.destroy();
    }, ms);
    this.partialTimer.unref();
  }

  private watchPartialLater(): void {
    this.partialOffset = -1;
    this.watchPartial();
  }

  /** Queues a reply slot in request order. */
  protected push(slot: Slot): void {
    this.ctx.counters.requests++;
    this.slots.push(slot);
    if (slot.pending === 0) this.scheduleFlush();
  }

  /** Stop reading after the slots so far: a protocol error or quit ends the connection. */
  /**
   * The client's bytes are not memcached requests: answer with `reply` if
   * the protocol has one (text: CLIENT_ERROR) and close this connection only.
   */
  protected refuseGarbage(reply: Buffer[] | undefined): void {
    this.ctx.counters.protocolErrors++;
    const slot = newSlot();
    if (reply) slot.parts = reply;
    slot.close = true;
    this.push(slot);
    this.stopReading();
  }

  /**
   * A reply the proxy gives itself (memcached's answer to a request it would
   * not carry out), in order with the rest; `close`: memcached hangs up after it.
   */
  protected answerHere(reply: Buffer[] | undefined, close: boolean): void {
    if (close) {
      this.refuseGarbage(reply);
      return;
    }
    const slot = newSlot();
    if (reply) slot.parts = reply;
    this.push(slot);
  }

  protected stopReading(): void {
    this.ended = true;
    this.socket.pause();
  }

  /** A leg of `slot` is done. */
  protected done(slot: Slot): void {
    if (--slot.pending === 0) this.scheduleFlush();
  }

  /** The shared connection this session uses to reach a server (one protocol, one order per session). */
  protected upstream(side: 'primary' | 'secondary', index: number): Upstream<F> {
    return this.ctx.upstream(this.protocol, side, index, this.id) as Upstream<F>;
  }

  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  private flush(): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    socket.cork();
    for (let slot = this.slots.peek(); slot !== undefined && slot.pending === 0; slot = this.slots.peek()) {
      this.slots.shift();
      if (slot.build) slot.build();
      let bytes = 0;
      for (const part of slot.parts) {
        socket.write(part);
        bytes += part.length;
      }
      this.replyEstimate = Math.max(bytes, this.replyEstimate / 2);
      if (slot.close) {
        this.ended = true;
        socket.uncork();
        closeSoon(socket);
        return;
      }
    }
    socket.uncork();
    this.maybeResume();
    this.maybeEnd();
  }

  private pause(): void {
    if (!this.reading) return;
    this.reading = false;
    this.ctx.counters.paused++;
    this.ctx.paused.add(this);
    this.socket.pause();
  }

  /** Sends held requests and reads again once its replies, its socket and the shared upstreams have room. */
  maybeResume(): void {
    if (this.reading || this.ended || this.finishing) return;
    this.release();
    if (
      this.held.length > 0 ||
      this.slots.length > this.window() / 2 ||
      this.socket.writableLength > this.ctx.maxClientBytes / 2 ||
      this.ctx.congested()
    ) {
      return;
    }
    this.reading = true;
    this.ctx.paused.delete(this);
    this.socket.resume();
  }

  private maybeEnd(): void {
    if (this.finishing && this.slots.length === 0 && !this.socket.destroyed) closeSoon(this.socket);
  }

  private teardown(): void {
    // Upstreams are shared: legs still in flight for this session finish there and are discarded.
    clearTimeout(this.partialTimer);
    this.held.drain();
    this.ended = true;
    this.ctx.paused.delete(this);
  }
}
