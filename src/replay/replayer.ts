/**
 * The replayer: applies the effect of source operations to a target pool,
 * routed the way the application's client routes (the pool's distribution),
 * by the outcome rules, in the source's order per key, in bounded memory.
 *
 * `apply()` never blocks and never throws: an operation is queued on the
 * connection its key is pinned to, or, when that server is down or too slow,
 * dropped with its key remembered so the target loses that key once it can
 * take writes again (DESIGN.md invariants 1 to 4).
 */
import type { Operation } from '../ops/operation.js';
import { MemcachedClient } from '../net/client.js';
import { itemFits, type ServerLimits } from '../net/server-limits.js';
import { speaksMeta } from '../net/server-version.js';
import { ByteBudget } from '../ops/budget.js';
import { metaKeyFits } from '../protocol/meta.js';
import { DEFAULT_LIMITS, type Limits } from '../protocol/limits.js';
import { metaFlagNumber } from '../protocol/meta.js';
import type { Pool } from '../topology/pool.js';
import type { KeyFreshness } from './freshness.js';
import { inSample, keyHash } from './key-hash.js';
import { LagHistogram } from './lag.js';
import { isMutation, outcomeActions, type FlushPolicy, type TargetAction } from './outcome.js';
import { TokenBucket } from './rate.js';
import { RecentMutations } from './recency.js';
import { allocatorFor, WriteTimes, type TwoWayOptions } from './two-way.js';
import {
  makeJob,
  TargetConnection,
  type Job,
  type JobResult,
  type MemoryBudget,
} from './target-connection.js';

export interface ReplayerOptions {
  readonly target: Pool;
  /** The target is this source's 1:1 counterpart (`--map`): flush_all is repeated there. */
  readonly mapped?: boolean;
  /** The source server (`host:port`), asked for the remaining TTL of keys to fill. */
  readonly source?: string;
  /** Fill on read: a get hit on the source is written to the target in add mode (default: on when `source` is set). */
  readonly fill?: boolean;
  /** A key is filled at most once per window (default 60 s). */
  readonly fillWindowMs?: number;
  /** TTL lookups on the source per second, at most (default 1000). */
  readonly fillRatePerSecond?: number;
  /** Also send reads to the target (load testing; replies are discarded). */
  readonly includeReads?: boolean;
  /** Mirror this share (0..1) of keys, chosen by key hash (default 1). */
  readonly sample?: number;
  /** `all-targets`: repeat flush_all on every target server even when not mapped 1:1. */
  readonly flush?: 'skip' | 'all-targets';
  /** Commands queued or unconfirmed per target server before operations are dropped (default 65536). */
  readonly maxQueuedPerServer?: number;
  /**
   * Bytes all queued writes may hold (keys, values, bookkeeping), shared with
   * other replayers given the same budget (default 256 MiB of its own).
   */
  readonly queueBudget?: ByteBudget;
  /** Keys remembered for deletion after drops or failures, over all servers (default 1,000,000). */
  readonly maxRememberedKeys?: number;
  /** Slots of the key → last mutation table behind `changedSince` (default 2^20, 8 bytes each). */
  readonly freshnessSlots?: number;
  /** Connections per target server (default 2); a key always uses the same one. */
  readonly connectionsPerServer?: number;
  readonly connectTimeoutMs?: number;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  readonly limits?: Limits;
  /**
   * The capture clock now, in ms (default: the wall clock, right for live
   * capture; a pcap replay passes the time of the packet it has reached).
   * Relative TTLs are counted down from the capture time by it.
   */
  readonly now?: () => number;
  /** Loud events (a skipped flush_all, a target going down); default: none. */
  readonly onWarning?: (message: string) => void;
  /**
   * Two-way mirroring (two-way.ts): target connections bind ports of this
   * range; the peer mirror's writes are given to observePeer().
   */
  readonly twoWay?: TwoWayOptions;
}

export type FillSkipReason =
  | 'window' // filled (or tried) within the window
  | 'rate' // over the lookup rate
  | 'busy' // too many lookups in flight
  | 'sampled_out'
  | 'gone' // the source no longer has the key
  | 'mutated' // a mutation was seen after the read
  | 'expiring' // no TTL left on the source
  | 'exists' // the target already holds the key
  | 'peer_write' // two-way: the other side wrote the key within the conflict window
  | 'queue_full'
  | 'lookup_failed'
  | 'no_ttl_lookup' // the source is older than meta commands: it cannot tell a TTL
  | 'failed';

export interface ReplayCounters {
  /** Operations given to apply(). */
  seen: number;
  /** Operations whose commands the target confirmed. */
  applied: number;
  /** Operations with nothing to do, by reason (outcome rules, sampling). */
  skipped: Record<string, number>;
  /** Operations that could not be queued or whose outcome was lost (their keys are remembered). */
  dropped: number;
  /** Remembered keys deleted on the target after it came back. */
  invalidated: number;
  /**
   * Keys deleted on the target instead of written, by why (the source's
   * outcome unknown, a value over memshift's limit or the target's item
   * size, ...); the client's own deletes are not counted here.
   */
  invalidatedBy: Record<string, number>;
  /** Dropped keys that could not be remembered: possibly stale on the target. */
  unrecoverable: number;
  /** Operations the target answered with an error (their keys are remembered). */
  failed: number;
  /** incr/decr results that differed from the source's (the key was deleted). */
  diverged: number;
  /** Operations queued or awaiting the target. */
  queued: number;
  /** Keys waiting to be deleted on the target. */
  remembered: number;
  fills: { attempted: number; applied: number; skipped: number; skippedBy: Record<string, number> };
  /** Bytes written to the target. */
  bytes: number;
  /** Bytes the queued writes hold now, of the queue budget (shared when the budget is). */
  queuedBytes: number;
  queueBudgetBytes: number;
  /** Capture time to target reply, for applied operations. */
  lag: { p50: number; p99: number; max: number };
  /**
   * Two-way mirroring: operations of the peer mirror seen on the source (never
   * replayed), those that changed a key, and keys deleted on the target because
   * both sides wrote them within the conflict window.
   */
  peer: { seen: number; writes: number; conflicts: number };
}

/** Fits the systemd unit's MemoryMax=1G with the capture's own budget and the runtime beside it. */
export const DEFAULT_QUEUE_BYTES = 256 * 1024 * 1024;

/** Lookups of remaining TTL on the source at a time, at most. */
const MAX_LOOKUPS = 256;
const FILL_SLOTS = 1 << 16;

interface Server {
  readonly address: string;
  /** The meta connections keys are spread over, then the binary one once a key needed it. */
  readonly connections: TargetConnection[];
  binary: TargetConnection | undefined;
  /** The server does not speak memshift's meta commands (its `version`): every key goes binary. */
  metaless: boolean;
  readonly open: (protocol: 'meta' | 'binary') => TargetConnection;
}

export class Replayer implements KeyFreshness {
  private readonly target: Pool;
  private readonly servers: Server[];
  private readonly perServer: number;
  private readonly rules: { flushPolicy: FlushPolicy };
  private readonly sample: number;
  private readonly includeReads: boolean;
  private readonly fillOn: boolean;
  private readonly fillWindowMs: number;
  private readonly fillRate: TokenBucket;
  private readonly lastFill = new Float64Array(FILL_SLOTS).fill(-Infinity);
  private readonly source: MemcachedClient | undefined;
  private readonly recent: RecentMutations;
  private readonly budget: MemoryBudget;
  private readonly lagHistogram = new LagHistogram();
  private readonly targetLimits = new Map<string, ServerLimits>();
  /** Whether the source speaks meta (mg gives the remaining TTL); undefined: its version is not known yet. */
  private sourceMeta: Promise<boolean | undefined> = Promise.resolve(undefined);
  private readonly now: () => number;
  private readonly warn: (message: string) => void;
  private readonly writeTimes: WriteTimes | undefined;
  private lookups = 0;
  private closed = false;
  private readonly c = {
    seen: 0,
    applied: 0,
    skipped: {} as Record<string, number>,
    dropped: 0,
    invalidated: 0,
    invalidatedBy: {} as Record<string, number>,
    failed: 0,
    diverged: 0,
    fillsAttempted: 0,
    fillsApplied: 0,
    fillsSkipped: 0,
    fillSkippedBy: {} as Record<string, number>,
    peerSeen: 0,
    peerWrites: 0,
    conflicts: 0,
  };

  constructor(options: ReplayerOptions) {
    this.target = options.target;
    const flush: FlushPolicy =
      options.flush === 'all-targets' ? 'all-targets' : options.mapped ? 'mapped' : 'skip';
    this.rules = { flushPolicy: flush };
    this.sample = options.sample ?? 1;
    this.includeReads = options.includeReads ?? false;
    this.fillOn = (options.fill ?? options.source !== undefined) && options.source !== undefined;
    this.fillWindowMs = options.fillWindowMs ?? 60_000;
    this.fillRate = new TokenBucket(options.fillRatePerSecond ?? 1000);
    this.recent = new RecentMutations(options.freshnessSlots ?? 1 << 20);
    this.budget = {
      remembered: 0,
      maxRemembered: options.maxRememberedKeys ?? 1_000_000,
      unrecoverable: 0,
      queued: options.queueBudget ?? new ByteBudget(DEFAULT_QUEUE_BYTES),
    };
    this.warn = options.onWarning ?? (() => {});
    this.now = options.now ?? Date.now;
    this.writeTimes = options.twoWay === undefined ? undefined : new WriteTimes(options.twoWay);
    const ports = options.twoWay === undefined ? undefined : allocatorFor(options.twoWay.ports);
    this.perServer = Math.max(1, Math.floor(options.connectionsPerServer ?? 2));
    const perConnection = Math.max(2, Math.floor((options.maxQueuedPerServer ?? 65536) / this.perServer));
    const connectionOptions = {
      maxQueued: perConnection,
      connectTimeoutMs: options.connectTimeoutMs ?? 2000,
      backoffInitialMs: options.backoffInitialMs ?? 100,
      backoffMaxMs: options.backoffMaxMs ?? 2000,
      limits: options.limits ?? DEFAULT_LIMITS,
      now: this.now,
      ...(ports === undefined ? {} : { localPort: () => ports.take() }),
    };
    const events = {
      settled: (job: Job, result: JobResult) => this.settled(job, result),
      invalidated: () => this.c.invalidated++,
      connectionChange: (up: boolean, address?: string) => {
        if (!up && !this.closed) this.warn(`target ${address ?? ''} disconnected; remembering dropped keys`);
      },
    };
    this.servers = this.target.servers.map((server) => {
      const open = (protocol: 'meta' | 'binary'): TargetConnection =>
        new TargetConnection(server, { ...connectionOptions, protocol }, this.budget, {
          ...events,
          connectionChange: (up) => events.connectionChange(up, server.address),
        });
      return {
        address: server.address,
        connections: Array.from({ length: this.perServer }, () => open('meta')),
        binary: undefined,
        metaless: false,
        open,
      };
    });
    // The source is asked for fills' TTLs, and two-way deletes a conflicting key there.
    if (options.source !== undefined && (this.fillOn || options.twoWay !== undefined)) {
      this.source = new MemcachedClient(options.source, {
        connections: 1,
        maxPending: MAX_LOOKUPS,
        requestTimeoutMs: 2000,
        connectTimeoutMs: connectionOptions.connectTimeoutMs,
      });
      // Connect now, so ownClientPorts() can name the port before the first fill; the
      // answer says whether the source can be asked a TTL at all (server-version.ts).
      this.sourceMeta = this.source.version().then(speaksMeta, () => undefined);
    }
  }

  /**
   * The largest item each target server stores (`item_size_max`, by address),
   * read from the servers at start: a write that would not fit is turned into
   * a delete of its key there, before it is sent.
   */
  useTargetLimits(limits: readonly ServerLimits[]): void {
    for (const l of limits) this.targetLimits.set(l.address, l);
    for (const server of this.servers) {
      // A server older than memshift's meta commands is written over the binary protocol only.
      if (this.targetLimits.get(server.address)?.meta === false) server.metaless = true;
    }
  }

  /** The target pool's name, for reports. */
  get targetName(): string {
    return this.target.name;
  }

  /** Local ports of memshift's own connections to the source, to leave out of the capture. */
  ownClientPorts(): number[] {
    return this.source?.localPorts() ?? [];
  }

  /** KeyFreshness: a point in the order of mutations seen. */
  mark(): number {
    return this.recent.mark();
  }

  /** KeyFreshness: true if `key` was mutated after `mark`, or if that can no longer be told. */
  changedSince(key: Buffer, mark: number): boolean {
    return this.recent.changedSince(keyHash(key), mark);
  }

  /** Applies one source operation: queues its effect on the target, or drops it and remembers the key. */
  apply(op: Operation): void {
    this.c.seen++;
    if (this.closed) {
      this.skip('closed');
      return;
    }
    try {
      this.route(op);
    } catch (err) {
      // A bug here must not stop the capture; the key is at least invalidated.
      this.c.failed++;
      this.warn(`replay of ${op.command} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private route(op: Operation): void {
    const actions = outcomeActions(op, this.rules);
    const hash = op.key.length > 0 ? keyHash(op.key) : 0;
    const capturedMs = op.timestampMicros > 0 ? op.timestampMicros / 1000 : -1;
    let counted = false;
    for (const action of actions) {
      if (action.kind === 'flush') {
        this.recent.recordFlush();
        this.flushAll(action.delay, capturedMs);
        counted = true;
        continue;
      }
      if (action.kind === 'skip') {
        if (action.reason === 'flush_unmapped') {
          this.warn(
            'flush_all on the source was not repeated on the target (not mapped 1:1; ' +
              'use --flush all-targets to flush every target server)',
          );
        }
        if (action.reason === 'read' && this.includeReads && (op.command === 'get' || op.command === 'gat')) {
          counted = this.read(op, hash, capturedMs);
          continue;
        }
        this.skip(action.reason);
        counted = true;
        continue;
      }
      if (isMutation(action)) this.recent.record(hash);
      if (!inSample(hash, this.sample)) {
        if (!counted) this.skip('sampled_out');
        counted = true;
        continue;
      }
      if (action.kind === 'fill') {
        if (!counted && this.includeReads) counted = this.read(op, hash, capturedMs);
        if (!counted) this.skip('read');
        counted = true;
        if (this.fillOn) this.fill(action.key, action.value, action.flags, hash, capturedMs);
        continue;
      }
      this.enqueue(action, hash, counted ? -1 : capturedMs, !counted, capturedMs);
      counted = true;
      // After the write, so the delete lands behind it on the key's connection.
      const times = this.writeTimes;
      if (
        times &&
        isMutation(action) &&
        times.localWrite(action.key, hash, capturedMs > 0 ? capturedMs : this.now())
      ) {
        this.conflict(action.key, hash);
      }
    }
    if (!counted) this.skip('sampled_out');
  }

  /**
   * The connection a key is pinned to (so its writes stay in order): one of
   * the server's meta connections, or for a key meta cannot carry (see
   * target-binary.ts) the server's binary connection, opened the first time.
   */
  private connectionFor(key: Buffer, hash: number): TargetConnection {
    const server = this.servers[this.target.distribution.serverFor(key)] as Server;
    if (server.metaless || !metaKeyFits(key)) {
      if (server.binary === undefined) {
        server.binary = server.open('binary');
        server.connections.push(server.binary);
      }
      return server.binary;
    }
    return server.connections[this.perServer === 1 ? 0 : (hash >>> 16) % this.perServer] as TargetConnection;
  }

  /** Whether the target server for `key` can store an item of this size (unknown limits: yes). */
  private fits(key: Buffer, value: Buffer, flags: number): boolean {
    const server = this.servers[this.target.distribution.serverFor(key)] as Server;
    const limits = this.targetLimits.get(server.address);
    return limits === undefined || itemFits(limits, key.length, value.length, flags);
  }

  private invalidatedFor(reason: string): void {
    this.c.invalidatedBy[reason] = (this.c.invalidatedBy[reason] ?? 0) + 1;
  }

  /** Queues a keyed action; `counts`: this job stands for the operation in the counters. */
  private enqueue(
    action: TargetAction,
    hash: number,
    capturedMs: number,
    counts: boolean,
    sourceMs: number,
  ): void {
    if (action.kind === 'delete' && action.reason !== 'delete') this.invalidatedFor(action.reason);
    if (
      (action.kind === 'set' || action.kind === 'append' || action.kind === 'prepend') &&
      // An append keeps the item's flags, unknown here: counted as set (the larger header).
      !this.fits(action.key, action.value, action.kind === 'set' ? action.flags : 1)
    ) {
      // The target would refuse it, and keep whatever it held: the key goes instead.
      this.invalidatedFor('target_item_size');
      action = { kind: 'delete', key: action.key, reason: 'too_large' };
    }
    let job: Job;
    switch (action.kind) {
      case 'set':
        job = makeJob('set', action.key, capturedMs, {
          value: action.value,
          flags: action.flags,
          exptime: action.exptime,
          expiresAtMs: expiresAt(action.exptime, sourceMs),
        });
        break;
      case 'append':
      case 'prepend':
        job = makeJob(action.kind, action.key, capturedMs, { value: action.value });
        break;
      case 'delete':
        job = makeJob('delete', action.key, capturedMs);
        break;
      case 'touch':
        job = makeJob('touch', action.key, capturedMs, {
          exptime: action.exptime,
          expiresAtMs: expiresAt(action.exptime, sourceMs),
        });
        break;
      case 'incr':
      case 'decr':
        job = makeJob(action.kind, action.key, capturedMs, {
          delta: action.delta,
          expected: action.expected,
          exptime: action.exptime,
          expiresAtMs: expiresAt(action.exptime, sourceMs),
          ...(action.initial === undefined ? {} : { initial: action.initial }),
        });
        break;
      default:
        return;
    }
    const conn = this.connectionFor(action.key, hash);
    if (conn.offer(job)) return;
    conn.remember(action.key);
    if (counts) this.c.dropped++;
    this.warn(
      `target ${conn.endpoint.address} is not taking writes (down, or its queue or the byte budget full): ` +
        'dropping them and remembering their keys for deletion',
    );
  }

  /**
   * An operation of the peer mirror on our source (two-way): never replayed,
   * but a key it changed counts against fills in flight, and against our own
   * writes to the key within the conflict window (two-way.ts).
   */
  observePeer(op: Operation): void {
    this.c.peerSeen++;
    if (this.closed || op.key.length === 0) return;
    if (!outcomeActions(op, this.rules).some(isMutation)) return;
    const hash = keyHash(op.key);
    this.c.peerWrites++;
    this.recent.record(hash);
    const ms = op.timestampMicros > 0 ? op.timestampMicros / 1000 : this.now();
    if (this.writeTimes?.peerWrite(op.key, hash, ms)) this.conflict(op.key, hash);
  }

  /**
   * Both sides wrote the key within the window: it goes from the target and
   * from our source (which now holds the peer's value). The peer sees the
   * crossing too and does the same, but its window follows its own lag, which
   * may be shorter than ours: each side cleans both pools. The source delete
   * comes from memshift's own connection, left out of our capture.
   */
  private conflict(key: Buffer, hash: number): void {
    this.c.conflicts++;
    this.invalidatedFor('two_way_conflict');
    const conn = this.connectionFor(key, hash);
    if (!conn.offer(makeJob('delete', key, -1))) conn.remember(key);
    if (this.source === undefined) return;
    if (this.lookups >= MAX_LOOKUPS) return this.invalidatedFor('two_way_source_busy');
    this.lookups++;
    this.source.delete(key).then(
      () => this.lookups--,
      () => {
        this.lookups--;
        this.c.failed++;
      },
    );
  }

  private read(op: Operation, hash: number, capturedMs: number): boolean {
    if (!inSample(hash, this.sample)) return false;
    const conn = this.connectionFor(op.key, hash);
    // Reads change nothing: when there is no room they are simply not sent.
    if (!conn.offer(makeJob('read', op.key, capturedMs))) this.skip('read_queue_full');
    return true;
  }

  private flushAll(delay: number | undefined, capturedMs: number): void {
    let first = true;
    for (const server of this.servers) {
      // On every connection: keys on each connection must see the flush in order.
      for (const conn of server.connections) {
        const job = makeJob('flush', Buffer.alloc(0), first ? capturedMs : -1, { exptime: delay ?? -1 });
        if (!conn.offer(job)) {
          // Nothing can be remembered for "every key": the target may keep flushed data.
          this.budget.unrecoverable++;
          if (first) this.c.dropped++;
          this.warn(`flush_all could not be queued for ${server.address}`);
        }
        first = false;
      }
    }
  }

  /**
   * Fill on read: asks the source how long the key still lives, then writes
   * the value in add mode, unless the key was mutated after the read. The
   * re-check happens right before queueing, and later writes to the key
   * queue behind the fill on the same connection, so a fill never overwrites
   * newer data and never brings a deleted key back.
   */
  private fill(key: Buffer, value: Buffer, flags: number, hash: number, readMs: number): void {
    const readMark = this.recent.mark();
    const slot = hash & (FILL_SLOTS - 1);
    const now = Date.now();
    if (now - this.lastFill[slot]! < this.fillWindowMs) return this.fillSkip('window', false);
    if (this.lookups >= MAX_LOOKUPS) return this.fillSkip('busy', false);
    if (!this.fillRate.take(now)) return this.fillSkip('rate', false);
    this.lastFill[slot] = now;
    this.c.fillsAttempted++;
    const source = this.source as MemcachedClient;
    this.lookups++;
    // A source before meta commands cannot tell a key's remaining TTL: a value filled without
    // it could outlive the source's, so there is no fill (DESIGN.md, invariant 4).
    this.sourceMeta
      .then((meta) => {
        if (meta === false) throw new NoTtlLookup();
        return source.mg(key, ['t']);
      })
      .then(
        (reply) => {
          this.lookups--;
          if (this.closed) return;
          if (reply.code !== 'HD' && reply.code !== 'VA') return this.fillSkip('gone', true);
          if (this.recent.changedSince(hash, readMark)) return this.fillSkip('mutated', true);
          const ttl = metaFlagNumber(reply.flags, 't') ?? NaN;
          if (!Number.isInteger(ttl)) return this.fillSkip('lookup_failed', true);
          // protocol.txt "Meta Get": t is -1 for an item that never expires.
          if (ttl === 0) return this.fillSkip('expiring', true);
          if (!this.fits(key, value, flags)) return this.fillSkip('too_large', true);
          // Two-way: the hit may be a value the other side has replaced or deleted since.
          const times = this.writeTimes;
          if (times?.peerWroteSince(hash, readMs > 0 ? readMs : this.now()))
            return this.fillSkip('peer_write', true);
          // The fill counts as our write: a peer write landing within the window deletes it again.
          times?.localWrite(key, hash, this.now());
          const job = makeJob('fill', key, -1, {
            value,
            flags,
            exptime: ttl < 0 ? 0 : ttl,
            expiresAtMs: ttl < 0 ? 0 : this.now() + ttl * 1000,
          });
          if (!this.connectionFor(key, hash).offer(job)) this.fillSkip('queue_full', true);
        },
        (err: unknown) => {
          this.lookups--;
          this.fillSkip(err instanceof NoTtlLookup ? 'no_ttl_lookup' : 'lookup_failed', true);
        },
      );
  }

  private fillSkip(reason: string, attempted: boolean): void {
    if (!attempted) this.c.fillsAttempted++;
    this.c.fillsSkipped++;
    this.c.fillSkippedBy[reason] = (this.c.fillSkippedBy[reason] ?? 0) + 1;
  }

  private skip(reason: string): void {
    this.c.skipped[reason] = (this.c.skipped[reason] ?? 0) + 1;
  }

  private settled(job: Job, result: JobResult): void {
    if (job.kind === 'fill') {
      if (result === 'ok') this.c.fillsApplied++;
      else this.fillSkip(result === 'not_stored' ? 'exists' : 'failed', true);
      return;
    }
    if (job.kind === 'diverged' || job.kind === 'invalidate') {
      if (result === 'failed') this.c.failed++;
      return;
    }
    if (job.kind === 'read') {
      if (result === 'lost') this.skip('read_lost');
      else if (result === 'failed') this.c.failed++;
      else this.c.applied++;
      return;
    }
    if (job.capturedMs < 0) {
      if (result === 'diverged') this.c.diverged++;
      return;
    }
    switch (result) {
      case 'absent':
        // The target lacked the key and the command did not create it: a miss there, not an applied write.
        this.skip('target_absent');
        return;
      case 'ok':
      case 'not_stored':
        this.c.applied++;
        if (job.capturedMs >= 0) {
          this.lagHistogram.record(Date.now() - job.capturedMs);
          this.writeTimes?.observeLag(Date.now() - job.capturedMs);
        }
        return;
      case 'diverged':
        this.c.diverged++;
        this.c.applied++;
        return;
      case 'failed':
        this.c.failed++;
        return;
      case 'lost':
        this.c.dropped++;
        return;
    }
  }

  /** Operations queued or unconfirmed, fill lookups in flight and keys waiting for deletion. */
  get backlog(): number {
    let n = this.lookups;
    for (const server of this.servers) {
      for (const conn of server.connections) n += conn.pending + conn.rememberedKeys;
    }
    return n;
  }

  /** Waits until everything queued reached the target (true), or until `timeoutMs` passed (false). */
  async drain(timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (this.backlog > 0) {
      if (Date.now() >= until) return false;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    return true;
  }

  /** Stops accepting operations, waits up to `timeoutMs` for the queues, then closes every connection. */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.closed) return;
    await this.drain(timeoutMs);
    this.closed = true;
    for (const server of this.servers) for (const conn of server.connections) conn.destroy();
    this.source?.destroy();
  }

  get counters(): ReplayCounters {
    const c = this.c;
    let queued = 0;
    let bytes = 0;
    for (const server of this.servers) {
      for (const conn of server.connections) {
        queued += conn.pending;
        bytes += conn.bytes;
      }
    }
    return {
      seen: c.seen,
      applied: c.applied,
      skipped: { ...c.skipped },
      dropped: c.dropped,
      invalidated: c.invalidated,
      invalidatedBy: { ...c.invalidatedBy },
      unrecoverable: this.budget.unrecoverable,
      failed: c.failed,
      diverged: c.diverged,
      queued,
      remembered: this.budget.remembered,
      fills: {
        attempted: c.fillsAttempted,
        applied: c.fillsApplied,
        skipped: c.fillsSkipped,
        skippedBy: { ...c.fillSkippedBy },
      },
      bytes,
      queuedBytes: this.budget.queued.used,
      queueBudgetBytes: this.budget.queued.max,
      lag: {
        p50: this.lagHistogram.quantile(0.5),
        p99: this.lagHistogram.quantile(0.99),
        max: this.lagHistogram.max,
      },
      peer: { seen: c.peerSeen, writes: c.peerWrites, conflicts: c.conflicts },
    };
  }

  /** A snapshot for JSON: the counters and each target server's connection state. */
  status(): ReplayStatus {
    return {
      ...this.counters,
      sample: this.sample,
      flushPolicy: this.rules.flushPolicy,
      fill: this.fillOn,
      includeReads: this.includeReads,
      servers: this.servers.map((server) => {
        let queued = 0;
        let remembered = 0;
        let connected = 0;
        let disconnects = 0;
        for (const conn of server.connections) {
          queued += conn.pending;
          remembered += conn.rememberedKeys;
          if (conn.connected) connected++;
          disconnects += conn.disconnects;
        }
        return {
          address: server.address,
          connected,
          connections: server.connections.length,
          queued,
          remembered,
          disconnects,
        };
      }),
    };
  }
}

/** protocol.txt "Expiration times": up to 30 days an exptime is relative, beyond it a unix time. */
const RELATIVE_EXPTIME_MAX = 60 * 60 * 24 * 30;

/**
 * When a relative expiry set on the source at capture time `sourceMs` runs
 * out, in ms of the capture clock; 0 when the exptime is absolute, never or
 * already past (those are written as they are).
 */
/** The source is older than meta commands (no `mg ... t`): no way to learn a key's TTL. */
class NoTtlLookup extends Error {}

function expiresAt(exptime: number, sourceMs: number): number {
  if (exptime <= 0 || exptime > RELATIVE_EXPTIME_MAX || sourceMs <= 0) return 0;
  return sourceMs + exptime * 1000;
}

export interface ReplayStatus extends ReplayCounters {
  sample: number;
  flushPolicy: FlushPolicy;
  fill: boolean;
  includeReads: boolean;
  servers: {
    address: string;
    /** Connections open, of `connections`. */
    connected: number;
    connections: number;
    queued: number;
    remembered: number;
    disconnects: number;
  }[];
}
