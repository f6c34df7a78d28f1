/**
 * Repair: remove from the new pool every value the old pool does not hold.
 *
 * A capture gap (kernel drops, a hole in a flow) means some writes to the
 * old pool never reached the new one, and the keys they touched cannot be
 * named. What such a loss leaves behind is always on the target: an older
 * value, other flags, a key the source deleted, a TTL the source shortened.
 * So repair walks the target: each target server's keys are listed
 * (`lru_crawler metadump`, as copy lists a source), read in batches with
 * value, flags, TTL and CAS (`mg ... v f t c u q`), looked up on the source
 * server the old pool's hashing places each on, and compared.
 *
 * A key whose value or flags differ from the source's, that the source lacks,
 * or that would outlive the source's copy by more than `ttlSlack` seconds is
 * removed with a delete guarded by the CAS read from the target
 * (`md <key> C<cas> q`, reference/memcached-protocol.txt "Meta Delete").
 * The target is read before the source: a writer (a mirror, the proxy, an
 * application writing both pools) changes the source and then the target,
 * so whatever the source read shows that the target read did not, the
 * target either gets later (and the removal only hastens it) or already
 * got, with a new CAS that makes the delete fail with EX (counted as
 * changed since read). Repair only deletes: it never writes a value, so it
 * can neither resurrect a key nor overwrite a fresher one. A removed key is
 * a miss, which copy or the application's next read fills from the source.
 *
 * A target started with -C keeps no CAS, so nothing guards a delete there:
 * such keys are counted (unguarded) and left alone.
 *
 * Rate (`rate`, `bandwidth`), slow-down, batches, the checkpoint and
 * `--resume` work as in copy (the walked servers here are the targets).
 */
import { parseEndpoint } from '../net/address.js';
import { MemcachedClient } from '../net/client.js';
import type { ConnectionOptions } from '../net/connection.js';
import { parserLimitsFor, readServerLimits, type ServerLimits } from '../net/server-limits.js';
import type { Pool } from '../topology/pool.js';
import {
  keysFileOf,
  readCheckpoint,
  readKeys,
  removeCheckpoint,
  writeCheckpoint,
  writeKeys,
  CheckpointMismatchError,
  type CheckpointState,
} from './checkpoint.js';
import { collectKeys, KeyList, ServerClock, type EnumerationMethod } from './enumerate.js';
import { BatchLink } from './meta-batch.js';
import { LatencyGovernor, TokenBucket } from './rate-limit.js';
import { BatchCursor } from './batch-cursor.js';
import { repairBatch, REPAIR_COUNTS, type RepairCounts } from './repair-batch.js';

export { REPAIR_COUNTS, type RepairCounts };

export interface RepairOptions {
  readonly from: Pool;
  readonly to: Pool;
  /** Target keys per second over all target servers (default: unlimited). */
  readonly rate?: number;
  /** Value bytes per second read from the sources, as listed on the targets (default: unlimited). */
  readonly bandwidth?: number;
  /** Batches in flight per target server at most (default 4); fewer while the servers slow down. */
  readonly concurrency?: number;
  /** Keys per batch (default 1024) and listed bytes per batch (default 4 MiB), whichever fills first. */
  readonly batchKeys?: number;
  readonly batchBytes?: number;
  /** A target TTL longer than the source's by more than this many seconds is removed (default 2). */
  readonly ttlSlack?: number;
  /** The largest value read, instead of what the servers' `item_size_max` allows. */
  readonly maxValue?: number;
  /** Consecutive failed batches after which a target server is given up (default 3). */
  readonly giveUpAfter?: number;
  readonly checkpoint?: string;
  readonly resume?: boolean;
  readonly signal?: AbortSignal;
  /** Keys held in memory per target server at most (default 50 million). */
  readonly maxKeys?: number;
  readonly connection?: Partial<ConnectionOptions>;
}

export interface RepairProgress {
  readonly phase: 'listing' | 'repairing' | 'done';
  /** Target keys to work through in this run. */
  readonly total: number;
  readonly done: number;
  readonly counts: Readonly<RepairCounts>;
  readonly elapsedMs: number;
  readonly keysPerSecond: number;
  readonly etaSeconds: number | undefined;
}

export interface RepairTargetReport {
  readonly address: string;
  readonly method: EnumerationMethod | 'checkpoint' | undefined;
  readonly warnings: string[];
  readonly listed: number;
  readonly resumedAt: number;
  readonly itemSizeMax: number;
  readonly stopped?: string;
}

export interface RepairReport extends RepairProgress {
  /** Removed in all: stale, absent on the source, outliving it. */
  readonly removed: number;
  /** Every target key was listed and checked: no incomplete listing, overflow, failure or interruption. */
  readonly complete: boolean;
  readonly interrupted: boolean;
  readonly targets: RepairTargetReport[];
  readonly slowdowns: number;
  readonly errors: string[];
  /** A few keys removed or left, for a look by hand. */
  readonly examples: string[];
}

export interface RepairEvents {
  onProgress?(progress: RepairProgress): void;
  onWarning?(warning: string): void;
  readonly progressEveryMs?: number;
}

interface Prepared {
  readonly list: KeyList;
  readonly order: Uint32Array | undefined;
  readonly report: RepairTargetReport;
}

export async function runRepair(options: RepairOptions, events: RepairEvents = {}): Promise<RepairReport> {
  const job = new RepairJob(options, events);
  try {
    return await job.run();
  } finally {
    job.destroy();
  }
}

class RepairJob {
  private readonly counts: RepairCounts = Object.fromEntries(REPAIR_COUNTS.map((k) => [k, 0])) as never;
  private phase: RepairProgress['phase'] = 'listing';
  private total = 0;
  private done = 0;
  private readonly started = performance.now();
  private lastProgress = 0;
  private lastSave = 0;
  private saving: Promise<void> = Promise.resolve();
  private readonly keyRate: TokenBucket | undefined;
  private readonly byteRate: TokenBucket | undefined;
  private sources: BatchLink[] = [];
  private targets: BatchLink[] = [];
  private state: CheckpointState | undefined;
  private readonly errors: string[] = [];
  private readonly examples: string[] = [];
  private slowdowns = 0;
  private incomplete = false;

  constructor(
    private readonly options: RepairOptions,
    private readonly events: RepairEvents,
  ) {
    this.keyRate = options.rate ? new TokenBucket(options.rate, Math.max(1, options.rate / 10)) : undefined;
    this.byteRate = options.bandwidth
      ? new TokenBucket(options.bandwidth, Math.max(1, options.bandwidth / 10))
      : undefined;
  }

  async run(): Promise<RepairReport> {
    const { from, to } = this.options;
    const file = this.options.checkpoint;
    if (file !== undefined && this.options.resume) {
      const state = await readCheckpoint(file);
      if (!state) throw new CheckpointMismatchError(file, 'no checkpoint to resume from');
      if (state.job !== 'repair') throw new CheckpointMismatchError(file, 'it is not a repair checkpoint');
      const same = (a: string[], b: readonly { address: string }[]): boolean =>
        a.length === b.length && a.every((x, i) => x === b[i]!.address);
      if (!same(state.from, from.servers) || !same(state.to, to.servers)) {
        throw new CheckpointMismatchError(file, 'the checkpoint is for other pools');
      }
      this.state = state;
    }
    const limitsOf = (address: string): Promise<ServerLimits> =>
      withClient(address, this.options.connection, (c) => readServerLimits(c));
    const sourceLimits = await Promise.all(from.servers.map((s) => limitsOf(s.address)));
    const targetLimits = await Promise.all(to.servers.map((s) => limitsOf(s.address)));
    // Values are read up to the largest item either side stores, or --max-value.
    const connection = {
      ...this.options.connection,
      limits: parserLimitsFor([...sourceLimits, ...targetLimits], this.options.maxValue),
    };
    this.sources = from.servers.map((s) => new BatchLink(parseEndpoint(s.address), connection));
    this.targets = to.servers.map((s) => new BatchLink(parseEndpoint(s.address), connection));
    const resumed = this.state !== undefined;
    const lists = await Promise.all(to.servers.map((s, t) => this.prepare(s.address, t, targetLimits[t]!)));
    if (file !== undefined && !resumed) {
      this.state = {
        version: 1,
        job: 'repair',
        from: from.servers.map((s) => s.address),
        to: to.servers.map((s) => s.address),
        order: 'hottest',
        startedAt: new Date().toISOString(),
        sources: lists.map((l) => ({ address: l.report.address, total: l.list.length, done: 0, ahead: [] })),
      };
      await writeCheckpoint(file, this.state);
    }
    this.phase = 'repairing';
    this.progress(true);
    const stopped = await Promise.all(lists.map((l, t) => this.walk(l, t)));
    const interrupted = this.options.signal?.aborted ?? false;
    this.phase = 'done';
    if (file !== undefined && this.state) {
      await this.saving;
      const unfinished = this.state.sources.some((s) => s.done < s.total);
      if (unfinished || this.errors.length > 0) await writeCheckpoint(file, this.state);
      else await removeCheckpoint(file, to.servers.length);
    }
    const progress = this.snapshot();
    this.events.onProgress?.(progress);
    await Promise.all([...this.sources, ...this.targets].map((l) => l.close()));
    const c = this.counts;
    return {
      ...progress,
      removed: c.removedStale + c.removedAbsentOnSource + c.removedOutlivesSource,
      complete:
        !interrupted &&
        !this.incomplete &&
        this.errors.length === 0 &&
        c.failed + c.overflow + c.unguarded + c.unsupported === 0,
      interrupted,
      targets: lists.map((l, t) => ({
        ...l.report,
        ...(stopped[t] === undefined ? {} : { stopped: stopped[t] }),
      })),
      slowdowns: this.slowdowns,
      errors: this.errors,
      examples: this.examples,
    };
  }

  destroy(): void {
    for (const l of [...this.sources, ...this.targets]) l.destroy();
  }

  /** Lists (or reads back) one target's keys, hottest first. */
  private async prepare(address: string, t: number, limits: ServerLimits): Promise<Prepared> {
    const file = this.options.checkpoint;
    const saved = this.state?.sources[t];
    const base = { address, itemSizeMax: limits.itemSizeMax };
    if (file !== undefined && saved) {
      const list = await readKeys(keysFileOf(file, t), saved.total);
      const ahead = (saved.ahead ?? []).reduce((n, [a, b]) => n + (b - a), 0);
      this.total += saved.total - saved.done - ahead;
      return {
        list,
        order: undefined,
        report: { ...base, method: 'checkpoint', warnings: [], listed: saved.total, resumedAt: saved.done },
      };
    }
    return withClient(address, this.options.connection, async (client) => {
      const clock = await ServerClock.of(client);
      const expected = Number((await client.stats()).get('curr_items') ?? 0);
      const list = new KeyList({ expected, maxKeys: this.options.maxKeys ?? 50_000_000, now: clock.now() });
      const info = { method: undefined as EnumerationMethod | undefined, warnings: [] as string[] };
      const now = clock.now();
      // An item already expired on the target is never served: nothing to repair.
      const listed = await collectKeys(client, list, (e) => e.exp === -1 || e.exp > now, {
        info,
        onWarning: (w) => this.warn(w),
      });
      if (info.method === 'cachedump') this.incomplete = true;
      this.counts.overflow += list.overflow;
      if (list.overflow > 0) {
        this.warn(
          `${address}: ${list.overflow} keys beyond the in-memory cap (${list.length}) are not checked`,
        );
      }
      const order = list.hottestFirst();
      if (file !== undefined) await writeKeys(keysFileOf(file, t), list, order);
      this.total += list.length;
      return {
        list,
        order,
        report: { ...base, method: info.method, warnings: info.warnings, listed, resumedAt: 0 },
      };
    });
  }

  /** Works through one target's list in batches; returns why it was given up, if it was. */
  private async walk(prepared: Prepared, t: number): Promise<string | undefined> {
    const { list, order } = prepared;
    const address = this.options.to.servers[t]!.address;
    const governor = new LatencyGovernor(Math.max(1, this.options.concurrency ?? 4));
    const rateCap = this.options.rate ? Math.max(1, Math.floor(this.options.rate / 10)) : Infinity;
    const batchKeys = Math.max(1, Math.min(this.options.batchKeys ?? 1024, rateCap));
    const batchBytes = Math.max(1, this.options.batchBytes ?? 4 * 1024 * 1024);
    const giveUpAfter = Math.max(1, this.options.giveUpAfter ?? 3);
    const links = {
      target: this.targets[t]!,
      sources: this.sources,
      from: this.options.from,
      ttlSlack: this.options.ttlSlack ?? 2,
    };
    const cursor = new BatchCursor(list.length, this.state?.sources[t], prepared.report.resumedAt);
    const signal = this.options.signal;
    let inFlight = 0;
    let failedInRow = 0;
    let stopped: string | undefined;
    let wake: (() => void) | undefined;
    try {
      while (!signal?.aborted && stopped === undefined) {
        while (inFlight >= governor.window) await new Promise<void>((resolve) => (wake = resolve));
        if (stopped !== undefined) break;
        const batch = cursor.take(batchKeys, batchBytes, (n) => list.size(order ? order[n]! : n));
        if (!batch) break;
        const keys: Buffer[] = [];
        for (let n = batch.start; n < batch.end; n++) keys.push(list.key(order ? order[n]! : n));
        if (this.keyRate) await this.keyRate.take(keys.length, signal);
        if (this.byteRate) await this.byteRate.take(batch.bytes, signal);
        if (signal?.aborted) break;
        cursor.sent(batch);
        inFlight++;
        const sentWith = inFlight;
        const t0 = performance.now();
        void repairBatch(links, keys, () => governor.observe(performance.now() - t0, keys.length, sentWith))
          .then(
            (result) => {
              result.addTo(this.counts, (what, key) => this.example(what, key));
              failedInRow = 0;
              cursor.finished(batch);
            },
            (err: unknown) => {
              const text = err instanceof Error ? err.message : String(err);
              this.counts.failed += keys.length;
              if (this.errors.length < 20) this.errors.push(text);
              if (++failedInRow >= giveUpAfter && stopped === undefined) {
                stopped =
                  `${address}: repair stopped after ${failedInRow} failed batches in a row ` +
                  `(last: ${text}); the checkpoint keeps every key not checked: fix the server and ` +
                  `run the same command with --resume`;
                this.errors.push(stopped);
                this.warn(stopped);
              }
            },
          )
          .finally(() => {
            inFlight--;
            this.done += keys.length;
            this.progress(false);
            const w = wake;
            wake = undefined;
            w?.();
          });
      }
      while (inFlight > 0) await new Promise<void>((resolve) => (wake = resolve));
    } finally {
      this.slowdowns += governor.slowdowns;
    }
    return stopped;
  }

  private example(what: string, key: Buffer): void {
    if (this.examples.length < 10) this.examples.push(`${what}: ${JSON.stringify(key.toString('latin1'))}`);
  }

  private warn(text: string): void {
    this.events.onWarning?.(text);
  }

  private snapshot(): RepairProgress {
    const elapsedMs = performance.now() - this.started;
    const keysPerSecond = this.done / Math.max(0.001, elapsedMs / 1000);
    return {
      phase: this.phase,
      total: this.total,
      done: this.done,
      counts: { ...this.counts },
      elapsedMs,
      keysPerSecond,
      etaSeconds:
        keysPerSecond > 0 && this.phase === 'repairing'
          ? (this.total - this.done) / keysPerSecond
          : undefined,
    };
  }

  private progress(force: boolean): void {
    const now = performance.now();
    if (!force && now - this.lastProgress < (this.events.progressEveryMs ?? 250)) return;
    this.lastProgress = now;
    this.events.onProgress?.(this.snapshot());
    const file = this.options.checkpoint;
    if (file !== undefined && this.state && now - this.lastSave >= 1000) {
      this.lastSave = now;
      const state = this.state;
      this.saving = this.saving
        .then(() => writeCheckpoint(file, state))
        .catch((err: unknown) => {
          this.warn(`checkpoint not saved: ${err instanceof Error ? err.message : String(err)}`);
        });
    }
  }
}

async function withClient<T>(
  address: string,
  connection: Partial<ConnectionOptions> | undefined,
  use: (client: MemcachedClient) => Promise<T>,
): Promise<T> {
  const client = new MemcachedClient(address, connection ?? {});
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}
