/**
 * The proxy's listening socket: accepts client connections up to a limit,
 * closes the ones idle for too long, and shuts down gracefully (stop
 * accepting, let each connection finish what it has in flight, then close).
 *
 * What a connection does with its bytes is the handler's business; the
 * listener only owns the sockets' lifecycle.
 */
import { createServer, type Server, type Socket } from 'node:net';

export interface ListenerOptions {
  /** Loopback by default: a proxy open to the network is a decision the user makes explicitly. */
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  /** Open client connections at most; one more is accepted and closed at once (default 4096). */
  readonly maxConnections?: number;
  /** A connection with no bytes either way for this long is closed (ms, 0 = never; default 0). */
  readonly idleTimeoutMs?: number;
}

/** What the listener needs from whatever serves a connection. */
export interface ConnectionHandler {
  /** Stop reading new requests, answer the ones in flight, then close; resolves when closed. */
  finish(): Promise<void>;
  /** Close now. */
  destroy(): void;
}

export interface ListenerCounters {
  accepted: number;
  /** Refused because `maxConnections` were open. */
  rejected: number;
  /** Closed for idleness. */
  idleClosed: number;
  open: number;
}

export class Listener {
  readonly counters: ListenerCounters = { accepted: 0, rejected: 0, idleClosed: 0, open: 0 };
  private readonly server: Server;
  private readonly handlers = new Map<Socket, ConnectionHandler>();
  /** Refused sockets until they are gone: each is destroyed, never left to its peer to close. */
  private readonly refused = new Set<Socket>();
  private readonly options: ListenerOptions;
  private closing = false;

  constructor(options: ListenerOptions, serve: (socket: Socket, id: number) => ConnectionHandler) {
    this.options = options;
    const max = options.maxConnections ?? 4096;
    let nextId = 1;
    this.server = createServer({ noDelay: true }, (socket) => {
      if (this.closing || this.handlers.size >= max) {
        this.counters.rejected++;
        // memcached answers a connection over its limit with an error line and closes (protocol.txt, "General-purpose statistics": rejected_connections).
        socket.on('error', () => undefined);
        this.refused.add(socket);
        socket.once('close', () => this.refused.delete(socket));
        socket.end('SERVER_ERROR too many open connections\r\n');
        closeSoon(socket);
        return;
      }
      this.counters.accepted++;
      this.counters.open++;
      const handler = serve(socket, nextId++);
      this.handlers.set(socket, handler);
      socket.once('close', () => {
        this.handlers.delete(socket);
        this.counters.open--;
      });
      const idle = options.idleTimeoutMs ?? 0;
      if (idle > 0) {
        socket.setTimeout(idle, () => {
          this.counters.idleClosed++;
          handler.destroy();
        });
      }
    });
  }

  /** Starts listening; resolves with the bound address. */
  listen(): Promise<{ host: string; port: number }> {
    const host = this.options.host ?? '127.0.0.1';
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port ?? 0, host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        const port = typeof address === 'object' && address !== null ? address.port : 0;
        resolve({ host, port });
      });
    });
  }

  /** The bound `host:port` (after listen). */
  get address(): string {
    const a = this.server.address();
    if (a === null || typeof a === 'string') return String(a);
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  /**
   * Stops accepting, asks every connection to finish its in-flight requests,
   * and destroys whatever is still open after `graceMs`.
   */
  async close(graceMs = 5000): Promise<void> {
    this.closing = true;
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const finishing = Promise.all([...this.handlers.values()].map((h) => h.finish()));
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([finishing, grace]);
    clearTimeout(timer);
    for (const h of this.handlers.values()) h.destroy();
    for (const socket of this.refused) socket.destroy();
    await stopped;
  }
}

/** How long a socket being closed may take to hand its last bytes to a peer that does not read. */
const CLOSE_GRACE_MS = 1000;

/**
 * Ends `socket` and makes sure it goes: destroyed once its last bytes left,
 * or after a short grace if the peer neither reads nor closes (an ended
 * socket otherwise lives until the peer closes its side).
 */
export function closeSoon(socket: Socket): void {
  if (socket.destroyed) return;
  if (!socket.writableEnded) socket.end();
  const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  timer.unref();
  socket.once('finish', () => {
    clearTimeout(timer);
    socket.destroy();
  });
  socket.once('close', () => clearTimeout(timer));
}
