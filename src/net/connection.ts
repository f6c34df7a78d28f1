import { Socket, connect } from 'node:net';
import type { AsciiResponse } from '../protocol/ascii-frames.js';
import { AsciiResponseParser } from '../protocol/ascii.js';
import { FrameDecoder } from '../protocol/decoder.js';
import { MemshiftError, ProtocolError } from '../protocol/errors.js';
import { DEFAULT_LIMITS, type Limits } from '../protocol/limits.js';
import type { Endpoint } from './address.js';
import { ConnectionError, QueueFullError, TimeoutError } from './errors.js';
import { Ring } from './ring.js';

export interface ConnectionOptions {
  /** Give up on a connect attempt after this long. */
  readonly connectTimeoutMs: number;
  /** A request not answered this long after it was queued fails, and the connection is redialled. */
  readonly requestTimeoutMs: number;
  /** Requests queued or in flight on one connection; more are refused with QueueFullError. */
  readonly maxPending: number;
  /** First and longest wait between reconnect attempts (doubling, with jitter). */
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly limits: Limits;
}

export const DEFAULT_CONNECTION_OPTIONS: ConnectionOptions = Object.freeze({
  connectTimeoutMs: 2000,
  requestTimeoutMs: 5000,
  maxPending: 4096,
  backoffInitialMs: 100,
  backoffMaxMs: 5000,
  limits: DEFAULT_LIMITS,
});

/**
 * How a request's reply is delimited on an ASCII connection:
 * - `single`: one frame (STORED, a number, a meta reply, VERSION...);
 * - `list`: frames up to END (VALUE blocks, STAT lines, cachedump ITEM lines);
 * - `stream`: frames up to END handed one by one to a sink (lru_crawler metadump).
 * - `batch`: every frame to the sink, error replies included, until the sink
 *   says the batch is over (pipelined meta commands closed by `mn`): in a
 *   batch an error answers one command, not the whole request.
 * An ERROR / CLIENT_ERROR / SERVER_ERROR reply ends any of them.
 */
export type ReplyShape = 'single' | 'list' | 'stream' | 'batch';

/**
 * Receives streamed frames; returns true when the frame ends the reply (some
 * replies end without END, e.g. `BUSY ...` from the LRU crawler). END and
 * error replies always end it.
 */
export type FrameSink = (frame: AsciiResponse) => boolean;

interface Pending {
  readonly parts: Buffer[];
  readonly shape: ReplyShape;
  readonly doing: string;
  readonly resolve: (frames: AsciiResponse[]) => void;
  readonly reject: (err: Error) => void;
  readonly sink: FrameSink | undefined;
  readonly frames: AsciiResponse[];
  deadline: number;
}

export interface ConnectionCounters {
  requests: number;
  replies: number;
  timeouts: number;
  /** Requests refused because the queue was full. */
  overflows: number;
  connects: number;
  connectFailures: number;
  disconnects: number;
}

export function zeroCounters(): ConnectionCounters {
  return {
    requests: 0,
    replies: 0,
    timeouts: 0,
    overflows: 0,
    connects: 0,
    connectFailures: 0,
    disconnects: 0,
  };
}

type State = 'idle' | 'connecting' | 'open' | 'backoff' | 'closed';

const NO_FRAMES: AsciiResponse[] = [];

/**
 * One pipelined ASCII connection to one server. Requests are written in
 * order, coalesced per tick (cork/uncork), and stop at the socket's
 * backpressure (`writableNeedDrain`) until it drains; replies are matched to
 * requests in order. Every queue is bounded by `maxPending`.
 *
 * Failure policy: a failed connect attempt fails the requests waiting for it
 * at once (callers decide whether to retry) and schedules a reconnect with
 * exponential backoff; requests made while backing off fail fast with the
 * last error. A connection that drops fails the requests in flight (their
 * outcome is unknown) and redials for the ones not yet sent.
 */
export class Connection {
  readonly endpoint: Endpoint;
  readonly counters: ConnectionCounters = zeroCounters();
  private readonly options: ConnectionOptions;
  private readonly unsent = new Ring<Pending>();
  private readonly inflight = new Ring<Pending>();
  private socket: Socket | undefined;
  private decoder: FrameDecoder<AsciiResponse>;
  private state: State = 'idle';
  private lastError: Error | undefined;
  private failures = 0;
  private flushScheduled = false;
  private paused = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private closeWaiters: (() => void)[] = [];
  private closing = false;

  constructor(endpoint: Endpoint, options: Partial<ConnectionOptions> = {}) {
    this.endpoint = endpoint;
    this.options = { ...DEFAULT_CONNECTION_OPTIONS, ...options };
    this.decoder = new FrameDecoder(new AsciiResponseParser(this.options.limits));
  }

  /** Requests queued or awaiting a reply. */
  get pending(): number {
    return this.unsent.length + this.inflight.length;
  }

  get connected(): boolean {
    return this.state === 'open';
  }

  /** The open socket's local port (none while not connected): a capture leaves memshift's own traffic out. */
  localPorts(): number[] {
    const port = this.socket?.localPort;
    return port === undefined ? [] : [port];
  }

  /**
   * Sends one request and resolves with its reply frames (`single`: one frame;
   * `list`: the frames before END; `stream`: the frame that ended the reply,
   * the others went to `sink`; an error reply: that reply alone).
   * Server error replies resolve too: they are values, the caller decides.
   */
  request(parts: Buffer[], shape: ReplyShape, doing: string, sink?: FrameSink): Promise<AsciiResponse[]> {
    return new Promise((resolve, reject) => {
      if (this.state === 'closed' || this.closing) {
        reject(new ConnectionError(this.endpoint.address, doing, 'the client was closed'));
        return;
      }
      if (this.state === 'backoff' && this.lastError) {
        reject(this.failFast(doing));
        return;
      }
      if (this.pending >= this.options.maxPending) {
        this.counters.overflows++;
        reject(new QueueFullError(this.endpoint.address, this.options.maxPending));
        return;
      }
      this.counters.requests++;
      this.unsent.push({
        parts,
        shape,
        doing,
        resolve,
        reject,
        sink,
        frames: shape === 'list' ? [] : NO_FRAMES,
        deadline: Date.now() + this.options.requestTimeoutMs,
      });
      this.armWatchdog();
      if (this.state === 'idle') this.dial();
      else if (this.state === 'open') this.scheduleFlush();
    });
  }

  /** Stops reading while a consumer catches up (streamed replies); the watchdog waits too. */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket?.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const head = this.inflight.peek();
    if (head) head.deadline = Date.now() + this.options.requestTimeoutMs;
    this.socket?.resume();
  }

  /**
   * Refuses new requests, lets the ones already made be sent and answered (or
   * time out), then closes. Requests that cannot be sent (no connection) fail.
   */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.closing = true;
    if (this.state === 'idle' || this.state === 'backoff') {
      this.failAll(
        this.unsent,
        (p) => new ConnectionError(this.endpoint.address, p.doing, 'the client was closed'),
      );
    }
    if (this.pending > 0) await new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    this.destroy();
  }

  /** Drops the connection now; everything pending fails. */
  destroy(): void {
    this.state = 'closed';
    clearTimeout(this.reconnectTimer);
    clearInterval(this.watchdog);
    this.watchdog = undefined;
    const error = new ConnectionError(this.endpoint.address, 'waiting for a reply', 'the client was closed');
    this.failAll(this.inflight, () => error);
    this.failAll(this.unsent, () => error);
    this.socket?.destroy();
    this.socket = undefined;
    this.wakeCloseWaiters();
  }

  private dial(): void {
    this.state = 'connecting';
    const socket = connect({ host: this.endpoint.host, port: this.endpoint.port, noDelay: true });
    this.socket = socket;
    this.decoder = new FrameDecoder(new AsciiResponseParser(this.options.limits));
    const connectTimer = setTimeout(() => {
      socket.destroy(
        new ConnectionError(
          this.endpoint.address,
          'connect',
          `no answer within ${this.options.connectTimeoutMs} ms`,
        ),
      );
    }, this.options.connectTimeoutMs);
    socket.once('connect', () => {
      clearTimeout(connectTimer);
      if (this.socket !== socket) return;
      this.counters.connects++;
      this.failures = 0;
      this.lastError = undefined;
      if (this.state === 'connecting') this.state = 'open';
      if (this.paused) socket.pause();
      this.scheduleFlush();
    });
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('drain', () => this.flush());
    socket.on('error', (err) => {
      this.lastError = err;
    });
    socket.once('close', () => {
      clearTimeout(connectTimer);
      if (this.socket === socket) this.onClose();
    });
  }

  private onClose(): void {
    const wasOpen = this.state === 'open';
    this.socket = undefined;
    const reason = describe(this.lastError) ?? 'connection closed by the server';
    if (wasOpen) {
      this.counters.disconnects++;
      this.failAll(
        this.inflight,
        (p) => new ConnectionError(this.endpoint.address, p.doing, reason, { cause: this.lastError }),
      );
    } else if (this.state === 'connecting') {
      this.counters.connectFailures++;
      this.failures++;
      const error = this.lastError ?? new Error(reason);
      this.lastError = error;
      this.failAll(this.inflight, (p) => this.failFast(p.doing));
      this.failAll(this.unsent, (p) => this.failFast(p.doing));
    }
    if (this.closing) {
      this.failAll(this.unsent, (p) => this.failFast(p.doing));
      this.state = 'closed';
    }
    this.wakeCloseWaiters();
    if (this.state === 'closed') return;
    this.state = 'backoff';
    if (wasOpen && this.unsent.length > 0) {
      this.dial();
      return;
    }
    const base = Math.min(
      this.options.backoffMaxMs,
      this.options.backoffInitialMs * 2 ** Math.max(0, this.failures - 1),
    );
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.reconnectTimer = setTimeout(() => {
      if (this.state !== 'backoff') return;
      if (this.unsent.length > 0 || this.failures > 0) this.dial();
      else this.state = 'idle';
    }, delay);
    this.reconnectTimer.unref();
  }

  /** The error for requests that cannot be sent because the server cannot be reached. */
  private failFast(doing: string): ConnectionError {
    const reason = describe(this.lastError) ?? 'not connected';
    return new ConnectionError(this.endpoint.address, `connect (for ${doing})`, reason, {
      cause: this.lastError,
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Writes queued requests in one corked batch, up to the socket's backpressure. */
  private flush(): void {
    const socket = this.socket;
    if (!socket || this.state !== 'open' || this.unsent.length === 0) return;
    if (socket.writableNeedDrain) return;
    socket.cork();
    while (this.unsent.length > 0 && !socket.writableNeedDrain) {
      const p = this.unsent.shift() as Pending;
      for (const part of p.parts) socket.write(part);
      this.inflight.push(p);
    }
    socket.uncork();
  }

  private onData(socket: Socket, chunk: Buffer): void {
    if (this.socket !== socket) return;
    try {
      this.decoder.push(chunk, (frame) => this.onFrame(frame));
    } catch (err) {
      const reason =
        err instanceof ProtocolError
          ? `unreadable reply (${err.message})`
          : `reply handling failed (${describe(err)})`;
      this.lastError = new MemshiftError('MEMSHIFT_ERR_PROTOCOL', reason, { cause: err });
      socket.destroy();
    }
  }

  private onFrame(frame: AsciiResponse): void {
    const p = this.inflight.peek();
    if (!p) throw new MemshiftError('MEMSHIFT_ERR_PROTOCOL', `reply "${frame.kind}" with no request waiting`);
    let ends =
      p.shape === 'batch' ? false : p.shape === 'single' || frame.kind === 'end' || frame.kind === 'error';
    if (!ends) {
      if (p.sink) ends = p.sink(frame);
      else p.frames.push(frame);
    }
    if (!ends) {
      p.deadline = Date.now() + this.options.requestTimeoutMs;
      return;
    }
    this.inflight.shift();
    this.counters.replies++;
    // A list resolves with its frames; anything else with the frame that ended it.
    p.resolve(p.shape === 'list' && frame.kind === 'end' ? p.frames : [frame]);
    if (this.pending === 0) this.wakeCloseWaiters();
  }

  private armWatchdog(): void {
    if (this.watchdog) return;
    const every = Math.max(10, Math.min(250, this.options.requestTimeoutMs / 4));
    // Not unref'd: a request waiting for an answer keeps the process alive,
    // and the watchdog stops itself once nothing is pending.
    this.watchdog = setInterval(() => this.checkDeadlines(), every);
  }

  private checkDeadlines(): void {
    if (this.pending === 0) {
      clearInterval(this.watchdog);
      this.watchdog = undefined;
      return;
    }
    if (this.paused) return;
    const now = Date.now();
    const head = this.inflight.peek();
    if (head && head.deadline < now) {
      // Replies come in order: once one is overdue the stream is stuck, so
      // everything in flight fails and the connection is redialled.
      const timeout = this.options.requestTimeoutMs;
      this.counters.timeouts += this.inflight.length;
      this.failAll(this.inflight, (p) => new TimeoutError(this.endpoint.address, p.doing, timeout));
      this.lastError = new TimeoutError(this.endpoint.address, head.doing, timeout);
      this.socket?.destroy();
      return;
    }
    while ((this.unsent.peek()?.deadline ?? Infinity) < now) {
      const p = this.unsent.shift() as Pending;
      this.counters.timeouts++;
      p.reject(new TimeoutError(this.endpoint.address, p.doing, this.options.requestTimeoutMs));
    }
  }

  private failAll(queue: Ring<Pending>, error: (p: Pending) => Error): void {
    for (let p = queue.shift(); p; p = queue.shift()) p.reject(error(p));
  }

  private wakeCloseWaiters(): void {
    if (this.closeWaiters.length === 0 || this.pending > 0) return;
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const wake of waiters) wake();
  }
}

const ERRNO_TEXT: Record<string, string> = {
  ECONNREFUSED: 'connection refused (nothing listens there?)',
  ECONNRESET: 'connection reset by the server',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  EPIPE: 'connection closed while writing',
  EADDRNOTAVAIL: 'address not available',
};

function describe(err: unknown): string | undefined {
  if (err === undefined) return undefined;
  if (err instanceof MemshiftError) return err.message;
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code) return `${ERRNO_TEXT[code] ?? err.message} [${code}]`;
    return err.message;
  }
  return String(err);
}
