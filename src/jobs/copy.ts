/**
 * Backfill: copy the keys the old pool holds into the new pool, hottest
 * first, with their flags and remaining TTL, to the server the new pool's
 * distribution picks.
 *
 * Per source server: list its keys (`lru_crawler metadump`, read into a
 * compact list as fast as the server sends them), order them, then work
 * through the list in batches: pipelined `mg` on the source, pipelined
 * `ms ... ME` (add mode: a value already on the target, written by mirroring
 * or the application, is fresher and wins) on each target server.
 *
 * TTLs: `mg`'s `t` is the remaining TTL by the source's own clock, written
 * as is (never the original TTL again: a copy does not outlive its source by
 * more than the clocks' one-second ticks); a key with less than a second left
 * is skipped as expired; no expiry stays no expiry unless --max-ttl caps it. A TTL above 30 days must be sent as unix time
 * (reference/memcached-protocol.txt, "Expiration"), in the target's clock.
 *
 * With live mirroring (`freshness`), a key that mirroring saw mutated after
 * the copy read it is not written; and if it was mutated while the write was
 * on its way, the copy's write is taken back with a CAS-guarded delete that
 * only removes the copy's own value (DESIGN.md, invariant 4).
 */
import { parseEndpoint } from '../net/address.js';
import { MemcachedClient } from '../net/client.js';
import type { ConnectionOptions } from '../net/connection.js';
import type { MetadumpEntry } from '../protocol/ascii-frames.js';
import type { KeyFreshness } from '../replay/freshness.js';
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
import { BatchLink, CRLF, RequestBuilder, type FetchedBatch } from './meta-batch.js';
import { LatencyGovernor, TokenBucket } from './rate-limit.js';

export const SKIP_REASONS = [
  'expired',
  'vanished',
  'exists',
  'changed-during-copy',
  'filtered',
  'short-ttl',
  'too-large',
  'overflow',
  'failed',
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

export interface CopyOptions {
  readonly from: Pool;
  readonly to: Pool;
  /** 'hottest' (default): most recently used first, fetched before never fetched; 'dump': as listed. */
  readonly order?: 'hottest' | 'dump';
  /** Keys per second over all source servers (default: unlimited). */
  readonly rate?: number;
  /** Value bytes per second read from the sources (default: unlimited). */
  readonly bandwidth?: number;
  /** Batches in flight per source server at most (default 4); fewer while the source is slow. */
  readonly concurrency?: number;
  /** Keys per batch (default 1024) and value bytes per batch (default 4 MiB), whichever fills first. */
  readonly batchKeys?: number;
  readonly batchBytes?: number;
  /** Cap on the TTL written, seconds; also given to keys that never expire. */
  readonly maxTtl?: number;
  /** Keys with less TTL left than this are not copied. */
  readonly minTtl?: number;
  /** Values larger than this are not copied. */
  readonly maxSize?: number;
  /** Only keys matching (tested on the key read as latin1) / starting with these bytes. */
  readonly match?: RegExp;
  readonly prefix?: Buffer;
  /** Live mirroring's view of mutations; without it the copy is a point-in-time snapshot. */
  readonly freshness?: KeyFreshness;
  /** Checkpoint file; `resume` continues from it. */
  readonly checkpoint?: string;
  readonly resume?: boolean;
  readonly signal?: AbortSignal;
  /** Keys held in memory per source server at most (default 50 million). */
  readonly maxKeys?: number;
  readonly connection?: Partial<ConnectionOptions>;
}

export interface CopyProgress {
  readonly phase: 'listing' | 'copying' | 'done';
  /** Keys to work through (listed and kept by the filters), over all sources. */
  readonly total: number;
  /** Keys finished: copied or skipped after listing. */
  readonly done: number;
  readonly copied: number;
  /** Value bytes written. */
  readonly bytes: number;
  readonly skipped: Readonly<Record<SkipReason, number>>;
  readonly elapsedMs: number;
  readonly keysPerSecond: number;
  readonly bytesPerSecond: number;
  /** Seconds left at the current rate, when it can be told. */
  readonly etaSeconds: number | undefined;
}

export interface CopySourceReport {
  readonly address: string;
  readonly method: EnumerationMethod | 'checkpoint' | undefined;
  readonly warnings: string[];
  /** Keys the dump listed (before filters). */
  readonly listed: number;
  /** Keys worked through in this run. */
  readonly total: number;
  /** Keys already done by an earlier run (resume). */
  readonly resumedAt: number;
}

export interface CopyReport extends CopyProgress {
  /** True when no live mirroring guarded the copy: it is the source as it was when read. */
  readonly pointInTime: boolean;
  readonly interrupted: boolean;
  readonly sources: CopySourceReport[];
  /** Times the copy slowed down because a source answered slower. */
  readonly slowdowns: number;
  readonly errors: string[];
}

export interface CopyEvents {
  /** At most every `progressEveryMs` (default 250 ms), and once at the end. */
  onProgress?(progress: CopyProgress): void;
  onWarning?(warning: string): void;
  readonly progressEveryMs?: number;
}

const MONTH_SECONDS = 30 * 24 * 3600;

interface Prepared {
  readonly list: KeyList;
  /** Indexes into `list` in copy order; undefined: list order. */
  readonly order: Uint32Array | undefined;
  /** The source's clock, to tell an expired key from a vanished one (none for a resumed list). */
  readonly clock: ServerClock | undefined;
  readonly report: CopySourceReport;
}

function zeroSkips(): Record<SkipReason, number> {
  return Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
}

/** Runs a copy to the end (or until `signal` aborts it) and reports what it did. */
export async function runCopy(options: CopyOptions, events: CopyEvents = {}): Promise<CopyReport> {
  const job = new CopyJob(options, events);
  try {
    return await job.run();
  } finally {
    job.destroy();
  }
}

class CopyJob {
  private readonly skipped = zeroSkips();
  private copied = 0;
  private bytes = 0;
  private total = 0;
  private done = 0;
  private phase: CopyProgress['phase'] = 'listing';
  private readonly started = performance.now();
  private lastProgress = 0;
  private readonly keyRate: TokenBucket | undefined;
  private readonly byteRate: TokenBucket | undefined;
  private readonly targets: BatchLink[];
  private targetClocks: ServerClock[] = [];
  private readonly errors: string[] = [];
  private slowdowns = 0;
  private state: CheckpointState | undefined;
  private lastSave = 0;
  private saving: Promise<void> = Promise.resolve();

  constructor(
    private readonly options: CopyOptions,
    private readonly events: CopyEvents,
  ) {
    this.keyRate = options.rate ? new TokenBucket(options.rate, Math.max(1, options.rate / 10)) : undefined;
    this.byteRate = options.bandwidth
      ? new TokenBucket(options.bandwidth, Math.max(1, options.bandwidth / 10))
      : undefined;
    this.targets = options.to.servers.map(
      (s) => new BatchLink(parseEndpoint(s.address), options.connection ?? {}),
    );
  }

  async run(): Promise<CopyReport> {
    const { from, to } = this.options;
    const file = this.options.checkpoint;
    if (file !== undefined && this.options.resume) {
      const state = await readCheckpoint(file);
      if (!state) throw new CheckpointMismatchError(file, 'no checkpoint to resume from');
      const same = (a: string[], b: readonly { address: string }[]): boolean =>
        a.length === b.length && a.every((x, i) => x === b[i]!.address);
      if (!same(state.from, from.servers) || !same(state.to, to.servers)) {
        throw new CheckpointMismatchError(file, 'the checkpoint is for other pools');
      }
      this.state = state;
    }
    this.targetClocks = await Promise.all(
      to.servers.map(async (s) => {
        const client = new MemcachedClient(s.address, this.options.connection ?? {});
        try {
          return await ServerClock.of(client);
        } finally {
          await client.close();
        }
      }),
    );
    const resumed = this.state !== undefined;
    const lists = await Promise.all(from.servers.map((s, i) => this.prepare(s.address, i)));
    if (file !== undefined && !resumed) {
      this.state = {
        version: 1,
        from: from.servers.map((s) => s.address),
        to: to.servers.map((s) => s.address),
        order: this.options.order ?? 'hottest',
        startedAt: new Date().toISOString(),
        sources: lists.map((l) => ({ address: l.report.address, total: l.list.length, done: 0 })),
      };
      await writeCheckpoint(file, this.state);
    }
    this.phase = 'copying';
    this.progress(true);
    await Promise.all(lists.map((l, i) => this.copySource(l, i)));
    const interrupted = this.options.signal?.aborted ?? false;
    this.phase = 'done';
    if (file !== undefined && this.state) {
      await this.saving;
      if (interrupted || this.errors.length > 0) await writeCheckpoint(file, this.state);
      else await removeCheckpoint(file, from.servers.length);
    }
    const progress = this.snapshot();
    this.events.onProgress?.(progress);
    await Promise.all(this.targets.map((t) => t.close()));
    return {
      ...progress,
      pointInTime: this.options.freshness === undefined,
      interrupted,
      sources: lists.map((l) => ({ ...l.report, total: l.list.length - l.report.resumedAt })),
      slowdowns: this.slowdowns,
      errors: this.errors,
    };
  }

  destroy(): void {
    for (const t of this.targets) t.destroy();
  }

  /** Lists (or reads back) one source's keys in the order they will be copied. */
  private async prepare(address: string, index: number): Promise<Prepared> {
    const file = this.options.checkpoint;
    const saved = this.state?.sources[index];
    if (file !== undefined && saved) {
      const list = await readKeys(keysFileOf(file, index), saved.total);
      this.total += saved.total - saved.done;
      return {
        list,
        order: undefined,
        clock: undefined,
        report: {
          address,
          method: 'checkpoint',
          warnings: [],
          listed: saved.total,
          total: 0,
          resumedAt: saved.done,
        },
      };
    }
    const client = new MemcachedClient(address, this.options.connection ?? {});
    try {
      const clock = await ServerClock.of(client);
      const stats = await client.stats();
      const expected = Number(stats.get('curr_items') ?? 0);
      const raw = new KeyList({ expected, maxKeys: this.options.maxKeys ?? 50_000_000, now: clock.now() });
      const info = { method: undefined as EnumerationMethod | undefined, warnings: [] as string[] };
      const listed = await collectKeys(client, raw, (e) => this.accept(e, clock.now()), {
        info,
        onWarning: (w) => this.events.onWarning?.(w),
      });
      this.skipped.overflow += raw.overflow;
      if (raw.overflow > 0) {
        this.warn(
          `${address}: ${raw.overflow} keys beyond the in-memory cap (${raw.length} keys) are not copied`,
        );
      }
      const order = this.options.order === 'dump' ? undefined : raw.hottestFirst();
      if (file !== undefined) {
        await writeKeys(keysFileOf(file, index), raw, order ?? raw.dumpOrder());
      }
      this.total += raw.length;
      this.progress(false);
      return {
        list: raw,
        order,
        clock,
        report: { address, method: info.method, warnings: info.warnings, listed, total: 0, resumedAt: 0 },
      };
    } finally {
      await client.close();
    }
  }

  /** The filters that can be applied from the listing alone. */
  private accept(entry: MetadumpEntry, now: number): boolean {
    const o = this.options;
    if (entry.exp !== -1 && entry.exp <= now) return this.skip('expired');
    if (o.minTtl !== undefined && entry.exp !== -1 && entry.exp - now < o.minTtl)
      return this.skip('short-ttl');
    if (o.prefix !== undefined && !startsWith(entry.key, o.prefix)) return this.skip('filtered');
    if (o.match !== undefined && !o.match.test(entry.key.toString('latin1'))) return this.skip('filtered');
    // A listed size is the whole item (header, key, value); the value is smaller.
    if (o.maxSize !== undefined && entry.size - entry.key.length - 80 > o.maxSize)
      return this.skip('too-large');
    return true;
  }

  private skip(reason: SkipReason, n = 1): false {
    this.skipped[reason] += n;
    return false;
  }

  /** Works through one source's list in batches, at most `window` batches in flight. */
  private async copySource(prepared: Prepared, index: number): Promise<void> {
    const { list, order, clock } = prepared;
    const address = this.options.from.servers[index]!.address;
    const source = new BatchLink(parseEndpoint(address), this.options.connection ?? {});
    const governor = new LatencyGovernor(Math.max(1, this.options.concurrency ?? 4));
    // Under --rate a batch is no larger than the bucket's burst, so the first
    // batch cannot run ahead of the rate (a larger take is let through at once).
    const rateCap = this.options.rate ? Math.max(1, Math.floor(this.options.rate / 10)) : Infinity;
    const batchKeys = Math.max(1, Math.min(this.options.batchKeys ?? 1024, rateCap));
    const batchBytes = Math.max(1, this.options.batchBytes ?? 4 * 1024 * 1024);
    const saved = this.state?.sources[index];
    // Batches finish out of order; the checkpoint moves over the finished prefix only.
    const finished = new Map<number, number>();
    let cursor = prepared.report.resumedAt;
    let inFlight = 0;
    let wake: (() => void) | undefined;
    const signal = this.options.signal;
    try {
      let next = cursor;
      while (next < list.length && !signal?.aborted) {
        while (inFlight >= governor.window) await new Promise<void>((resolve) => (wake = resolve));
        const start = next;
        let bytes = 0;
        const keys: Buffer[] = [];
        const indexes: number[] = [];
        while (next < list.length && keys.length < batchKeys && (keys.length === 0 || bytes < batchBytes)) {
          const i = order ? order[next]! : next;
          next++;
          bytes += list.size(i);
          keys.push(list.key(i));
          indexes.push(i);
        }
        if (this.keyRate) await this.keyRate.take(keys.length, signal);
        if (this.byteRate) await this.byteRate.take(bytes, signal);
        if (signal?.aborted) {
          next = start;
          break;
        }
        inFlight++;
        const sentWith = inFlight;
        const expired = (j: number): boolean =>
          clock !== undefined && list.expiredAt(indexes[j]!, clock.now());
        void this.copyBatch(source, keys, governor, sentWith, expired)
          .catch((err: unknown) => {
            if (this.errors.length < 20) this.errors.push(err instanceof Error ? err.message : String(err));
          })
          .finally(() => {
            inFlight--;
            this.done += keys.length;
            finished.set(start, start + keys.length);
            while (finished.has(cursor)) {
              const end = finished.get(cursor)!;
              finished.delete(cursor);
              cursor = end;
            }
            if (saved) saved.done = cursor;
            this.progress(false);
            const w = wake;
            wake = undefined;
            w?.();
          });
      }
      while (inFlight > 0) await new Promise<void>((resolve) => (wake = resolve));
    } finally {
      this.slowdowns += governor.slowdowns;
      await source.close();
    }
  }

  private async copyBatch(
    source: BatchLink,
    keys: Buffer[],
    governor: LatencyGovernor,
    inFlight: number,
    expired: (j: number) => boolean,
  ): Promise<void> {
    const freshness = this.options.freshness;
    const mark = freshness?.mark() ?? 0;
    const t0 = performance.now();
    let got: FetchedBatch;
    try {
      got = await source.fetch(keys, true);
    } catch (err) {
      this.skip('failed', keys.length);
      throw err;
    }
    governor.observe(performance.now() - t0, keys.length, inFlight);
    // A key listed but not found: expired if its listed expiry has passed, else gone (deleted, evicted).
    if (got.hits < keys.length) {
      for (let j = 0; j < keys.length; j++)
        if (got.hit[j] === 0) this.skip(expired(j) ? 'expired' : 'vanished');
    }
    const builders: (RequestBuilder | undefined)[] = new Array(this.targets.length);
    const members: number[][] = this.targets.map(() => []);
    const maxTtl = this.options.maxTtl;
    const minTtl = this.options.minTtl;
    const maxSize = this.options.maxSize;
    for (let j = 0; j < keys.length; j++) {
      if (got.hit[j] === 0) continue;
      const key = keys[j]!;
      const value = got.values[j]!;
      const left = got.ttl[j]!;
      let ttl: number;
      if (left < 0) ttl = maxTtl ?? 0;
      else if (left === 0) {
        // Expires within the second; T0 would mean "never".
        this.skip('expired');
        continue;
      } else ttl = maxTtl === undefined ? left : Math.min(left, maxTtl);
      if (minTtl !== undefined && ttl !== 0 && ttl < minTtl) {
        this.skip('short-ttl');
        continue;
      }
      if (maxSize !== undefined && value.length > maxSize) {
        this.skip('too-large');
        continue;
      }
      if (freshness?.changedSince(key, mark)) {
        this.skip('changed-during-copy');
        continue;
      }
      const t = this.options.to.distribution.serverFor(key);
      if (ttl > MONTH_SECONDS) ttl = this.targetClocks[t]!.now() + ttl;
      const b = (builders[t] ??= new RequestBuilder());
      b.ascii('ms ');
      const base64 = b.key(key);
      // Add mode (ME): protocol.txt "Meta Set", M(token) E = "add". Quiet unless the CAS is needed.
      b.ascii(
        ` ${value.length}${base64 ? ' b' : ''} T${ttl} F${got.flags[j]}${freshness ? ' ME c' : ' ME q'}\r\n`,
      );
      b.bytes(value);
      b.bytes(CRLF);
      members[t]!.push(j);
    }
    await Promise.all(
      builders.map(async (b, t) => {
        if (!b) return;
        const batch = members[t]!;
        await this.write(t, b, batch, keys, got.values, mark);
      }),
    );
  }

  /** Sends one target's share of a batch; counts copied, exists and, under mirroring, takes back stale writes. */
  private async write(
    t: number,
    b: RequestBuilder,
    batch: number[],
    keys: Buffer[],
    values: (Buffer | undefined)[],
    mark: number,
  ): Promise<void> {
    const target = this.targets[t]!;
    const freshness = this.options.freshness;
    let notStored = 0;
    let n = 0;
    const stale: { key: Buffer; cas: string }[] = [];
    try {
      await target.send(b.finish(), 'ms batch', (frame) => {
        const j = batch[n++];
        if (frame.code === 'NS') {
          notStored++;
          return;
        }
        if (freshness && frame.code === 'HD' && j !== undefined && freshness.changedSince(keys[j]!, mark)) {
          const cas = frame.flags.find((f) => f.startsWith('c'));
          if (cas) stale.push({ key: keys[j]!, cas: cas.slice(1) });
        }
      });
    } catch (err) {
      // The replies before the error tell; the rest of the batch has an unknown outcome.
      this.skip('exists', notStored);
      this.copied += n - notStored;
      this.skip('failed', batch.length - n);
      throw err;
    }
    let bytes = 0;
    for (const j of batch) bytes += values[j]!.length;
    this.skip('exists', notStored);
    this.copied += batch.length - notStored;
    this.bytes += bytes;
    if (stale.length > 0) {
      const md = new RequestBuilder();
      for (const s of stale) {
        md.ascii('md ');
        const base64 = md.key(s.key);
        md.ascii(`${base64 ? ' b' : ''} C${s.cas} q\r\n`);
      }
      await target.send(md.finish(), 'md batch', () => undefined);
      this.copied -= stale.length;
      this.skip('changed-during-copy', stale.length);
    }
  }

  private warn(text: string): void {
    this.events.onWarning?.(text);
  }

  private snapshot(): CopyProgress {
    const elapsedMs = performance.now() - this.started;
    const seconds = Math.max(0.001, elapsedMs / 1000);
    const keysPerSecond = this.done / seconds;
    const left = this.total - this.done;
    return {
      phase: this.phase,
      total: this.total,
      done: this.done,
      copied: this.copied,
      bytes: this.bytes,
      skipped: { ...this.skipped },
      elapsedMs,
      keysPerSecond,
      bytesPerSecond: this.bytes / seconds,
      etaSeconds: keysPerSecond > 0 && this.phase === 'copying' ? left / keysPerSecond : undefined,
    };
  }

  private progress(force: boolean): void {
    const now = performance.now();
    const every = this.events.progressEveryMs ?? 250;
    if (!force && now - this.lastProgress < every) return;
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

function startsWith(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}
