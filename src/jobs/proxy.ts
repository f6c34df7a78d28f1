/**
 * `memshift proxy`: clients talk to memshift, which answers from the primary
 * pool and keeps the secondary pool in step, for when capture is impossible.
 *
 *   shadow: old pool answers; each request it answered, with its reply, feeds
 *           PairedOperations → Replayer on the new pool (the mirror's
 *           outcome rules, bounded queues, dropped keys invalidated later,
 *           fill on read with the source's TTL); nothing on the primary path
 *           waits for the new pool.
 *   warm:   new pool answers; a miss is looked up on the old pool, returned
 *           and added to the new one; deletes go to both pools.
 *   dual:   writes go to both pools together; the client gets the primary's
 *           answer; a failing secondary server is skipped for a while and the
 *           keys it missed are deleted there once it answers again.
 */
import type { Socket } from 'node:net';
import { MemcachedClient } from '../net/client.js';
import { Listener, type ListenerCounters, type ListenerOptions } from '../net/listener.js';
import { DEFAULT_ITEM_SIZE_MAX, parserLimitsFor, readServerLimits } from '../net/server-limits.js';
import { PairedOperations } from '../ops/paired.js';
import type { OperationCounters } from '../ops/session.js';
import { DEFAULT_LIMITS, type Limits } from '../protocol/limits.js';
import { Replayer, type ReplayCounters, type ReplayerOptions } from '../replay/replayer.js';
import { parsePoolSpec, type Pool } from '../topology/pool.js';
import { runCopy, type CopyOptions, type CopyProgress, type CopyReport } from './copy.js';
import { BinaryProxySession, isBinaryStart } from './proxy-binary.js';
import { AsciiProxySession } from './proxy-ascii.js';
import { SecondaryKeeper } from './proxy-secondary.js';
import type { ProxyContext, ProxyCounters, ProxyMode } from './proxy-session.js';
import { Upstream } from './proxy-upstream.js';
import { AsciiResponseParser } from '../protocol/ascii.js';
import { BinaryResponseParser } from '../protocol/binary.js';
import type { FrameParser } from '../protocol/decoder.js';

export type { ProxyCounters, ProxyMode, WarmItem } from './proxy-session.js';

export type ProxyReplayTuning = Omit<ReplayerOptions, 'target' | 'mapped' | 'source'>;
export type ProxyBackfillOptions = Omit<CopyOptions, 'from' | 'to' | 'freshness' | 'signal'>;

export interface ProxyOptions {
  readonly mode: ProxyMode;
  /** The pool that answers clients: the old pool in shadow and dual modes, the new one in warm mode. */
  readonly primary: Pool;
  readonly secondary: Pool;
  readonly listen?: ListenerOptions;
  /** A primary request unanswered this long fails with SERVER_ERROR (default 2000 ms). */
  readonly timeoutMs?: number;
  /** Synchronous secondary requests (dual writes, warm lookups and deletes) give up after this long (default 250 ms). */
  readonly secondaryTimeoutMs?: number;
  /** A secondary server that failed is skipped this long (default 2000 ms). */
  readonly secondaryBackoffMs?: number;
  /** Connections to each server, shared by all clients (default 1); a client always uses the same one. */
  readonly connectionsPerServer?: number;
  /** A request begun and not finished for this long closes its client connection (default 30 s; 0: never). */
  readonly partialTimeoutMs?: number;
  /** Requests in flight per client connection before reading from it pauses (default 1024). */
  readonly maxInFlight?: number;
  /**
   * Reply bytes per client connection, buffered for it or expected for its
   * requests in flight, before its further requests wait (default 4 MiB).
   */
  readonly maxClientBytes?: number;
  /** Keys remembered for invalidation on the secondary (dual and warm modes; default 1,000,000). */
  readonly maxRememberedKeys?: number;
  readonly limits?: Limits;
  /**
   * The largest item a primary server stores, in bytes (memcached's -I), for
   * every server; by default each server's own `item_size_max`, read at start.
   */
  readonly itemSizeMax?: number;
  /** Shadow mode: false forwards to the primary only, touching the secondary not at all (a plain proxy; default true). */
  readonly shadow?: boolean;
  /** Shadow mode: the replayers' tuning. */
  readonly replay?: ProxyReplayTuning;
  /** Shadow mode: copy what each primary server already holds to the secondary, guarded by the shadow's freshness. */
  readonly backfill?: ProxyBackfillOptions | undefined;
  readonly onWarning?: (message: string) => void;
}

export interface ProxyStatus {
  readonly mode: ProxyMode;
  readonly address: string;
  readonly seconds: number;
  readonly connections: ListenerCounters;
  readonly proxy: ProxyCounters;
  /** Keys waiting to be deleted on the secondary (dual and warm modes), and those dropped for lack of room. */
  readonly remembered: number;
  readonly rememberOverflow: number;
  readonly invalidated: number;
  /** Shadow mode: the operations the proxy's replies made and what the replayers did, summed over primary servers. */
  readonly operations: OperationCounters | undefined;
  readonly replay: ReplayCounters | undefined;
  readonly backfill: {
    progress: CopyProgress | undefined;
    report: CopyReport | undefined;
    error: string | undefined;
  }[];
}

const SWEEP_MS = 50;

export class Proxy {
  private readonly options: ProxyOptions;
  private readonly counters: ProxyCounters = {
    requests: 0,
    primaryErrors: 0,
    protocolErrors: 0,
    secondarySent: 0,
    secondaryFailed: 0,
    secondarySkipped: 0,
    warmLookups: 0,
    warmHits: 0,
    paused: 0,
    partialTimeouts: 0,
  };
  private readonly listener: Listener;
  private readonly upstreams = new Set<Upstream<unknown>>();
  private readonly shared = new Map<number, Upstream<unknown>>();
  private readonly paused = new Set<{ maybeResume(): void }>();
  private congestedCount = 0;
  private readonly perServer: number;
  private limits: Limits;
  /** Each primary server's item_size_max, read at start. */
  private itemSizes: number[] = [];
  private readonly timeoutMs: number;
  private readonly secondaryTimeoutMs: number;
  private readonly shadows: PairedOperations[] = [];
  private readonly replayers: Replayer[] = [];
  private readonly backfills: ProxyStatus['backfill'] = [];
  private readonly keeper: SecondaryKeeper;
  private readonly abort = new AbortController();
  private sweepTimer: NodeJS.Timeout | undefined;
  private started = 0;

  constructor(options: ProxyOptions) {
    this.options = options;
    const limits = options.limits ?? DEFAULT_LIMITS;
    const timeoutMs = options.timeoutMs ?? 2000;
    const secondaryTimeoutMs = options.secondaryTimeoutMs ?? 250;
    this.limits = limits;
    this.timeoutMs = timeoutMs;
    this.secondaryTimeoutMs = secondaryTimeoutMs;
    this.perServer = Math.max(1, Math.floor(options.connectionsPerServer ?? 1));
    if (options.mode === 'shadow' && options.shadow !== false) {
      for (const server of options.primary.servers) {
        const replayer = new Replayer({
          ...options.replay,
          target: options.secondary,
          source: server.address,
          ...(options.onWarning ? { onWarning: options.onWarning } : {}),
        });
        this.replayers.push(replayer);
        this.shadows.push(new PairedOperations((op) => replayer.apply(op)));
      }
    }
    this.keeper = new SecondaryKeeper({
      mode: options.mode,
      primary: options.primary,
      secondary: options.secondary,
      timeoutMs,
      secondaryTimeoutMs,
      backoffMs: options.secondaryBackoffMs ?? 2000,
      maxRememberedKeys: options.maxRememberedKeys ?? 1_000_000,
      counters: this.counters,
      onWarning: options.onWarning,
    });
    const ctx: ProxyContext = {
      mode: options.mode,
      primary: options.primary,
      secondary: options.secondary,
      timeoutMs,
      secondaryTimeoutMs,
      maxInFlight: Math.max(2, options.maxInFlight ?? 1024),
      maxClientBytes: Math.max(1024, options.maxClientBytes ?? 4 * 1024 * 1024),
      partialTimeoutMs: options.partialTimeoutMs ?? 30_000,
      counters: this.counters,
      itemSizeMax: (index) => this.itemSizes[index] ?? DEFAULT_ITEM_SIZE_MAX,
      figures: () => this.figures(),
      shadows: this.shadows,
      secondaryUsable: (index) => this.keeper.usable(index),
      secondaryMissed: (index, key, reason) => this.keeper.missed(index, key, reason),
      deleted: (key) => this.keeper.deleted(key),
      warm: (key) => this.keeper.warm(key),
      upstream: (protocol, side, index, sessionId) => this.upstream(protocol, side, index, sessionId),
      congested: () => this.congestedCount > 0,
      paused: this.paused,
    };
    this.listener = new Listener(options.listen ?? {}, (socket, id) => serve(ctx, socket, id, this.limits));
  }

  async start(): Promise<{ host: string; port: number }> {
    await this.readLimits();
    const bound = await this.listener.listen();
    this.started = Date.now();
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
    if (this.options.backfill !== undefined && this.options.mode === 'shadow') this.startBackfill();
    return bound;
  }

  get address(): string {
    return this.listener.address;
  }

  /**
   * Each primary server's item_size_max (DESIGN.md, invariant 8): a store
   * larger than its server's items is refused here as memcached refuses it,
   * and replies are parsed up to the largest. A server that cannot be asked
   * now is assumed to have memcached's default, with a warning.
   */
  private async readLimits(): Promise<void> {
    const fixed = this.options.itemSizeMax;
    const servers = this.options.primary.servers;
    if (fixed !== undefined) {
      this.itemSizes = servers.map(() => fixed);
    } else {
      this.itemSizes = await Promise.all(
        servers.map(async (server) => {
          const client = new MemcachedClient(server.address, { requestTimeoutMs: this.timeoutMs });
          try {
            return (await readServerLimits(client)).itemSizeMax;
          } catch (err) {
            this.options.onWarning?.(
              `${server.address}: could not read item_size_max (${(err as Error).message}); assuming ${DEFAULT_ITEM_SIZE_MAX} bytes`,
            );
            return DEFAULT_ITEM_SIZE_MAX;
          } finally {
            client.destroy();
          }
        }),
      );
    }
    if (this.options.limits === undefined) {
      this.limits = parserLimitsFor(
        this.itemSizes.map((itemSizeMax, i) => ({ address: servers[i]?.address ?? '', itemSizeMax })),
        fixed,
      );
    }
  }

  /**
   * Graceful stop: no new connections, in-flight requests answered (up to
   * `graceMs`), then the shadow queues drain (up to `drainMs`).
   */
  async stop(graceMs = 5000, drainMs = 5000): Promise<ProxyStatus> {
    this.abort.abort();
    await this.listener.close(graceMs);
    clearInterval(this.sweepTimer);
    for (const up of this.upstreams) up.destroy();
    await Promise.all(this.replayers.map((r) => r.close(drainMs)));
    await this.keeper.close();
    return this.status();
  }

  status(): ProxyStatus {
    return {
      mode: this.options.mode,
      address: this.listener.address,
      seconds: this.started === 0 ? 0 : (Date.now() - this.started) / 1000,
      connections: { ...this.listener.counters },
      proxy: { ...this.counters },
      remembered: this.keeper.remembered,
      rememberOverflow: this.keeper.rememberOverflow,
      invalidated: this.keeper.invalidated,
      operations:
        this.options.mode === 'shadow' ? sumCounters(this.shadows.map((e) => e.counters)) : undefined,
      replay: this.options.mode === 'shadow' ? sumReplay(this.replayers.map((r) => r.counters)) : undefined,
      backfill: this.backfills.map((b) => ({ ...b })),
    };
  }

  /**
   * What a client's `stats` gets: the proxy's own figures, in memcached's
   * names where one fits, never a server's (which one would it be?).
   */
  private figures(): Array<[string, string]> {
    const now = Date.now();
    const c = this.counters;
    const l = this.listener.counters;
    const list: Array<[string, string | number]> = [
      ['pid', process.pid],
      ['uptime', this.started === 0 ? 0 : Math.floor((now - this.started) / 1000)],
      ['time', Math.floor(now / 1000)],
      ['version', 'memshift-proxy'],
      ['proxy_mode', this.options.mode],
      ['curr_connections', l.open],
      ['total_connections', l.accepted],
      ['rejected_connections', l.rejected],
      ['proxy_requests', c.requests],
      ['proxy_primary_errors', c.primaryErrors],
      ['proxy_protocol_errors', c.protocolErrors],
      ['proxy_partial_timeouts', c.partialTimeouts],
      ['proxy_paused', c.paused],
      ['proxy_secondary_sent', c.secondarySent],
      ['proxy_secondary_failed', c.secondaryFailed],
      ['proxy_secondary_skipped', c.secondarySkipped],
      ['proxy_warm_lookups', c.warmLookups],
      ['proxy_warm_hits', c.warmHits],
      ['primary_servers', this.options.primary.servers.length],
      ['secondary_servers', this.options.secondary.servers.length],
    ];
    return list.map(([name, value]) => [name, String(value)]);
  }

  /** Shadow mode: waits until the replayers' queues are empty (true) or `timeoutMs` passed. */
  async drain(timeoutMs: number): Promise<boolean> {
    const results = await Promise.all(this.replayers.map((r) => r.drain(timeoutMs)));
    return results.every(Boolean);
  }

  private upstream(
    protocol: 'ascii' | 'binary',
    side: 'primary' | 'secondary',
    index: number,
    sessionId: number,
  ): Upstream<unknown> {
    const perServer = this.perServer;
    const slot =
      (((protocol === 'ascii' ? 0 : 1) * 2 + (side === 'primary' ? 0 : 1)) * 65536 + index) * perServer +
      (sessionId % perServer);
    let up = this.shared.get(slot);
    if (up === undefined || up.dead) {
      const pool = side === 'primary' ? this.options.primary : this.options.secondary;
      const server = pool.servers[index];
      if (server === undefined) throw new Error(`no ${side} server ${index}`);
      const parser =
        protocol === 'ascii' ? new AsciiResponseParser(this.limits) : new BinaryResponseParser(this.limits);
      let congested = false;
      const created: Upstream<unknown> = new Upstream<unknown>(
        server.address,
        parser as FrameParser<unknown>,
        {
          timeoutMs: side === 'primary' ? this.timeoutMs : this.secondaryTimeoutMs,
          onDown: () => {
            this.upstreams.delete(created);
            if (congested) this.congestedCount--;
            congested = false;
            if (this.shared.get(slot) === created) this.shared.delete(slot);
            this.resumePaused();
          },
          onCongested: () => {
            if (side === 'primary' && !congested) {
              congested = true;
              this.congestedCount++;
            }
          },
          onDrain: () => {
            if (congested) this.congestedCount--;
            congested = false;
            this.resumePaused();
          },
        },
      );
      up = created;
      this.shared.set(slot, up);
      this.upstreams.add(up);
    }
    return up;
  }

  private resumePaused(): void {
    for (const session of [...this.paused]) session.maybeResume();
  }

  private sweep(): void {
    const now = Date.now();
    for (const up of this.upstreams) up.sweep(now);
    this.keeper.tick();
  }

  private startBackfill(): void {
    const backfill = this.options.backfill;
    if (backfill === undefined) return;
    this.options.primary.servers.forEach((server, index) => {
      const state: ProxyStatus['backfill'][number] = {
        progress: undefined,
        report: undefined,
        error: undefined,
      };
      this.backfills.push(state);
      const replayer = this.replayers[index];
      runCopy(
        {
          ...backfill,
          from: parsePoolSpec(server.address, 'modula', { where: '--from' }),
          to: this.options.secondary,
          ...(replayer ? { freshness: replayer } : {}),
          signal: this.abort.signal,
        },
        { onProgress: (p: CopyProgress) => (state.progress = p) },
      ).then(
        (report) => (state.report = report),
        (err: unknown) => (state.error = err instanceof Error ? err.message : String(err)),
      );
    });
  }
}

/** Picks the session by the connection's first byte, as memcached does. */
function serve(ctx: ProxyContext, socket: Socket, id: number, limits: Limits) {
  let session: AsciiProxySession | BinaryProxySession | undefined;
  socket.on('error', () => undefined);
  socket.once('data', (first: Buffer) => {
    session = isBinaryStart(first[0])
      ? new BinaryProxySession(ctx, socket, id, limits)
      : new AsciiProxySession(ctx, socket, id, limits);
    session.start(first);
  });
  return {
    finish: (): Promise<void> => {
      if (session !== undefined) return session.finish();
      socket.destroy();
      return Promise.resolve();
    },
    destroy: (): void => {
      socket.destroy();
    },
  };
}

function sumCounters(list: OperationCounters[]): OperationCounters | undefined {
  const [first, ...rest] = list;
  if (first === undefined) return undefined;
  const out = { ...first } as Record<string, unknown>;
  for (const c of rest) {
    for (const [name, value] of Object.entries(c)) {
      if (typeof value === 'number') out[name] = ((out[name] as number | undefined) ?? 0) + value;
    }
  }
  return out as unknown as OperationCounters;
}

function sumReplay(list: ReplayCounters[]): ReplayCounters | undefined {
  const [first, ...rest] = list;
  if (first === undefined) return undefined;
  if (rest.length === 0) return first;
  const out = structuredClone(first);
  for (const c of rest) {
    out.seen += c.seen;
    out.applied += c.applied;
    out.dropped += c.dropped;
    out.invalidated += c.invalidated;
    out.unrecoverable += c.unrecoverable;
    out.failed += c.failed;
    out.diverged += c.diverged;
    out.queued += c.queued;
    out.remembered += c.remembered;
    out.bytes += c.bytes;
    out.fills.attempted += c.fills.attempted;
    out.fills.applied += c.fills.applied;
    out.fills.skipped += c.fills.skipped;
    for (const [k, v] of Object.entries(c.skipped)) out.skipped[k] = (out.skipped[k] ?? 0) + v;
    out.lag.max = Math.max(out.lag.max, c.lag.max);
  }
  return out;
}
