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
 * one second shorter (never the original TTL again, and never longer than
 * the source's whatever the two clocks' one-second ticks); a key with a
 * second or less left is skipped as expired; no expiry stays no expiry unless --max-ttl caps it. A TTL above 30 days must be sent as unix time
 * (reference/memcached-protocol.txt, "Expiration"), in the target's clock.
 *
 * The guard (DESIGN.md, invariant 4), whatever writes beside the copy (a
 * mirror, the proxy, an application writing both pools): every key is read
 * with its CAS, written in add mode with the target's CAS asked back, and
 * once written, asked again on the source. A key that is gone there, has
 * another CAS (rewritten) or a shorter TTL is taken back on the target with a
 * delete guarded by the copy's own CAS, which removes the copy's value and
 * nothing a writer put there since. A writer changes the source before the
 * target, so a change the second look misses reaches the target after the
 * copy's write and overrides it. With live mirroring (`freshness`) a key that
 * mirroring saw mutated after the read is not written at all.
 *
 * Limits follow the servers: values are read up to the source's
 * `item_size_max` and written only where they fit the target's; a key that
 * no meta command can name (a binary-protocol key over 186 bytes that needs
 * base64) is skipped and counted. Either costs that key alone, never a batch.
 *
 * Failure is bounded and honest: the checkpoint moves only over batches that
 * succeeded (a failed one stays for `--resume` to retry), and a source whose
 * batches fail `giveUpAfter` times in a row is stopped with one error.
 */
import { parseEndpoint } from '../net/address.js';
import { MemcachedClient } from '../net/client.js';
import type { ConnectionOptions } from '../net/connection.js';
import { itemFits, parserLimitsFor, readServerLimits, type ServerLimits } from '../net/server-limits.js';
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
import { BatchLink, CRLF, RequestBuilder, type BatchError, type FetchedBatch } from './meta-batch.js';
import { LatencyGovernor, TokenBucket } from './rate-limit.js';

export const SKIP_REASONS = [
  'expired',
  'vanished',
  'exists',
  'changed-during-copy',
  'filtered',
  'short-ttl',
  'too-large',
  'unsupported-key',
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
  /**
   * The largest value read or written, instead of what each server's
   * `item_size_max` allows (read from `stats settings` at start).
   */
  readonly maxValue?: number;
  /** Consecutive failed batches after which a source server is given up (default 3). */
  readonly giveUpAfter?: number;
  /**
   * false skips the second look at the source and the take-back. Only for
   * measuring what the guard costs (bench/copy.ts); no command offers it.
   */
  readonly guard?: boolean;
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
  /** Keys of failed batches of an earlier run, tried again in this one (resume). */
  readonly retried: number;
  /** The source's `item_size_max`. */
  readonly itemSizeMax: number;
  /** Why this source was given up before its list was done. */
  readonly stopped?: string;
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
/** Pieces of the copy's `ms` line. */
const MS = Buffer.from('ms ');
const SPACE = Buffer.from(' ');
const TTL = Buffer.from(' T');
const BASE64_TTL = Buffer.from(' b T');
const FLAGS = Buffer.from(' F');
const ADD_WITH_CAS = Buffer.from(' ME c\r\n');

interface Prepared {
  readonly list: KeyList;
  readonly limits: ServerLimits;
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
  private targets: BatchLink[] = [];
  private targetClocks: ServerClock[] = [];
  private targetLimits: ServerLimits[] = [];
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
  }

  async run(): Promise<CopyReport> {
    const { from, to } = this.options;
    const file = this.options.checkpoint;
    if (file !== undefined && this.options.resume) {
      const state = await readCheckpoint(file);
      if (!state) throw new CheckpointMismatchError(file, 'no checkpoint to resume from');
      if (state.job === 'repair') throw new CheckpointMismatchError(file, "it is a repair's checkpoint");
      const same = (a: string[], b: readonly { address: string }[]): boolean =>
        a.length === b.length && a.every((x, i) => x === b[i]!.address);
      if (!same(state.from, from.servers) || !same(state.to, to.servers)) {
        throw new CheckpointMismatchError(file, 'the checkpoint is for other pools');
      }
      this.state = state;
    }
    const targetInfo = await Promise.all(
      to.servers.map(async (s) => {
        const client = new MemcachedClient(s.address, this.options.connection ?? {});
        try {
          return { clock: await ServerClock.of(client), limits: await readServerLimits(client) };
        } finally {
          await client.close();
        }
      }),
    );
    this.targetClocks = targetInfo.map((t) => t.clock);
    this.targetLimits = targetInfo.map((t) => t.limits);
    this.targets = to.servers.map(
      (s, t) =>
        new BatchLink(parseEndpoint(s.address), {
          ...this.options.connection,
          limits: parserLimitsFor([this.targetLimits[t]!], this.options.maxValue),
        }),
    );
    const resumed = this.state !== undefined;
    const lists = await Promise.all(from.servers.map((s, i) => this.prepare(s.address, i)));
    if (file !== undefined && !resumed) {
      this.state = {
        version: 1,
        job: 'copy',
        from: from.servers.map((s) => s.address),
        to: to.servers.map((s) => s.address),
        order: this.options.order ?? 'hottest',
        startedAt: new Date().toISOString(),
        sources: lists.map((l) => ({ address: l.report.address, total: l.list.length, done: 0, ahead: [] })),
      };
      await writeCheckpoint(file, this.state);
    }
    this.phase = 'copying';
    this.progress(true);
    const outcomes = await Promise.all(lists.map((l, i) => this.copySource(l, i)));
    const interrupted = this.options.signal?.aborted ?? false;
    this.phase = 'done';
    if (file !== undefined && this.state) {
      await this.saving;
      const unfinished = this.state.sources.some((s) => s.done < s.total);
      if (unfinished || this.errors.length > 0) await writeCheckpoint(file, this.state);
      else await removeCheckpoint(file, from.servers.length);
    }
    const progress = this.snapshot();
    this.events.onProgress?.(progress);
    await Promise.all(this.targets.map((t) => t.close()));
    return {
      ...progress,
      pointInTime: this.options.freshness === undefined,
      interrupted,
      sources: lists.map((l, i) => ({
        ...l.report,
        total: outcomes[i]!.total,
        ...(outcomes[i]!.stopped === undefined ? {} : { stopped: outcomes[i]!.stopped }),
      })),
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
    const client = new MemcachedClient(address, this.options.connection ?? {});
    try {
      const limits = await readServerLimits(client);
      if (file !== undefined && saved) {
        const list = await readKeys(keysFileOf(file, index), saved.total);
        const ahead = (saved.ahead ?? []).reduce((n, [a, b]) => n + (b - a), 0);
        const reached = Math.max(saved.reached ?? 0, saved.done);
        this.total += saved.total - saved.done - ahead;
        return {
          list,
          limits,
          order: undefined,
          clock: undefined,
          report: {
            address,
            method: 'checkpoint',
            warnings: [],
            listed: saved.total,
            total: 0,
            resumedAt: saved.done,
            retried: reached - saved.done - ahead,
            itemSizeMax: limits.itemSizeMax,
          },
        };
      }
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
        limits,
        order,
        clock,
        report: {
          address,
          method: info.method,
          warnings: info.warnings,
          listed,
          total: 0,
          resumedAt: 0,
          retried: 0,
          itemSizeMax: limits.itemSizeMax,
        },
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

  /**
   * Works through one source's list in batches, at most `window` batches in
   * flight. A batch is a run of list positions; the checkpoint's `done` is
   * the prefix of positions whose batches succeeded, `ahead` the runs that
   * succeeded past it, so a failed batch leaves a gap that --resume fills.
   */
  private async copySource(prepared: Prepared, index: number): Promise<{ total: number; stopped?: string }> {
    const { list, order, clock } = prepared;
    const address = this.options.from.servers[index]!.address;
    const source = new BatchLink(parseEndpoint(address), {
      ...this.options.connection,
      limits: parserLimitsFor([prepared.limits], this.options.maxValue),
    });
    const governor = new LatencyGovernor(Math.max(1, this.options.concurrency ?? 4));
    // Under --rate a batch is no larger than the bucket's burst, so the first
    // batch cannot run ahead of the rate (a larger take is let through at once).
    const rateCap = this.options.rate ? Math.max(1, Math.floor(this.options.rate / 10)) : Infinity;
    const batchKeys = Math.max(1, Math.min(this.options.batchKeys ?? 1024, rateCap));
    const batchBytes = Math.max(1, this.options.batchBytes ?? 4 * 1024 * 1024);
    const giveUpAfter = Math.max(1, this.options.giveUpAfter ?? 3);
    const saved = this.state?.sources[index];
    // Runs that succeeded, by start; the prefix moves over them in order.
    const finished = new Map<number, number>();
    for (const [a, b] of saved?.ahead ?? []) finished.set(a, b);
    let cursor = prepared.report.resumedAt;
    const advance = (): void => {
      while (finished.has(cursor)) {
        const end = finished.get(cursor)!;
        finished.delete(cursor);
        cursor = end;
      }
      if (saved) {
        saved.done = cursor;
        saved.ahead = [...finished.entries()].sort((x, y) => x[0] - y[0]);
      }
    };
    advance();
    let inFlight = 0;
    let total = 0;
    let failedInRow = 0;
    let stopped: string | undefined;
    let wake: (() => void) | undefined;
    const signal = this.options.signal;
    try {
      let next = cursor;
      while (next < list.length && !signal?.aborted && stopped === undefined) {
        while (inFlight >= governor.window) await new Promise<void>((resolve) => (wake = resolve));
        if (stopped !== undefined) break;
        // Skip runs an earlier run finished (the prefix may have moved over one already); a batch never spans one.
        next = Math.max(next, cursor);
        while (finished.has(next)) next = finished.get(next)!;
        if (next >= list.length) break;
        const start = next;
        let bytes = 0;
        const keys: Buffer[] = [];
        const indexes: number[] = [];
        while (
          next < list.length &&
          keys.length < batchKeys &&
          (keys.length === 0 || (bytes < batchBytes && !finished.has(next)))
        ) {
          const i = order ? order[next]! : next;
          next++;
          bytes += list.size(i);
          keys.push(list.key(i));
          indexes.push(i);
        }
        if (this.keyRate) await this.keyRate.take(keys.length, signal);
        if (this.byteRate) await this.byteRate.take(bytes, signal);
        if (signal?.aborted) break;
        if (saved) saved.reached = Math.max(saved.reached ?? 0, next);
        inFlight++;
        total += keys.length;
        const sentWith = inFlight;
        const expired = (j: number): boolean =>
          clock !== undefined && list.expiredAt(indexes[j]!, clock.now());
        void this.copyBatch(source, keys, governor, sentWith, expired)
          .then(
            () => {
              failedInRow = 0;
              finished.set(start, start + keys.length);
              advance();
            },
            (err: unknown) => {
              const text = err instanceof Error ? err.message : String(err);
              if (this.errors.length < 20) this.errors.push(text);
              if (++failedInRow >= giveUpAfter && stopped === undefined) {
                stopped =
                  `${address}: copy stopped after ${failedInRow} failed batches in a row ` +
                  `(last: ${text}); the checkpoint keeps every key not copied: fix the server and ` +
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
      await source.close();
    }
    return stopped === undefined ? { total } : { total, stopped };
  }

  /** Reads a batch from the source, writes it to the targets, and checks the source again. */
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
      got = await source.fetch(keys, true, true);
    } catch (err) {
      this.skip('failed', keys.length);
      throw err;
    }
    governor.observe(performance.now() - t0, keys.length, inFlight);
    this.skip('unsupported-key', got.unsupportedCount);
    // A key listed but not found: expired if its listed expiry has passed, else gone (deleted, evicted).
    if (got.hits + got.unsupportedCount < keys.length) {
      for (let j = 0; j < keys.length; j++)
        if (got.hit[j] === 0 && got.unsupported[j] === 0) this.skip(expired(j) ? 'expired' : 'vanished');
    }
    const builders: (RequestBuilder | undefined)[] = new Array(this.targets.length);
    const members: number[][] = this.targets.map(() => []);
    const written = new Int32Array(keys.length);
    const maxTtl = this.options.maxTtl;
    const minTtl = this.options.minTtl;
    const maxSize = this.options.maxSize;
    const maxValue = this.options.maxValue;
    for (let j = 0; j < keys.length; j++) {
      if (got.hit[j] === 0) continue;
      const key = keys[j]!;
      const value = got.values[j]!;
      const left = got.ttl[j]!;
      let ttl: number;
      if (left < 0) ttl = maxTtl ?? 0;
      else if (left <= 1) {
        // Expires within the second; T0 would mean "never".
        this.skip('expired');
        continue;
      } else {
        // `t` counts whole seconds of the source's clock, so the item has more than t - 1 and at
        // most t seconds left; written as t - 1 on the target's clock, the copy never outlives it.
        ttl = maxTtl === undefined ? left - 1 : Math.min(left - 1, maxTtl);
      }
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
      const fits =
        maxValue !== undefined
          ? value.length <= maxValue
          : itemFits(this.targetLimits[t]!, key.length, value.length, got.flags[j]!);
      if (!fits) {
        this.skip('too-large');
        continue;
      }
      written[j] = ttl;
      if (ttl > MONTH_SECONDS) ttl = this.targetClocks[t]!.now() + ttl;
      const b = (builders[t] ??= new RequestBuilder());
      // ms <key> <length>[ b] T<ttl> F<flags> ME c\r\n, numbers written straight into the batch.
      // Add mode (ME): protocol.txt "Meta Set", M(token) E = "add"; `c` asks for the target's CAS,
      // which the take-back's delete is guarded by. Not quiet: replies are matched by position.
      b.bytes(MS);
      const base64 = b.key(key);
      b.bytes(SPACE);
      b.number(value.length);
      b.bytes(base64 ? BASE64_TTL : TTL);
      b.number(ttl);
      b.bytes(FLAGS);
      b.number(got.flags[j]!);
      b.bytes(ADD_WITH_CAS);
      b.bytes(value);
      b.bytes(CRLF);
      members[t]!.push(j);
    }
    // `builders` has holes where a target got nothing; Array.from visits them too.
    const writes = await Promise.allSettled(
      Array.from(builders, (b, t) => (b ? this.write(t, b, members[t]!) : Promise.resolve([]))),
    );
    const stored: Stored[] = [];
    let failure: unknown;
    for (const w of writes) {
      if (w.status === 'fulfilled') stored.push(...w.value);
      else {
        const reason: unknown = w.reason;
        if (reason instanceof WriteFailure) stored.push(...reason.stored);
        failure ??= reason instanceof WriteFailure ? reason.reason : reason;
      }
    }
    await this.guard(source, keys, got, written, stored, mark);
    if (failure !== undefined) throw failure;
  }

  /**
   * Sends one target's share of a batch and returns what it stored with the
   * target's CAS. NS: the target had the key (fresher, add mode); a
   * `SERVER_ERROR` answers that key alone (too large for the target's items).
   */
  private async write(t: number, b: RequestBuilder, batch: number[]): Promise<Stored[]> {
    const stored: Stored[] = [];
    let n = 0;
    let notStored = 0;
    try {
      await this.targets[t]!.send(
        b.finish(),
        'ms batch',
        (frame) => {
          const j = batch[n++];
          if (j === undefined) return;
          if (frame.code === 'NS') notStored++;
          else if (frame.code === 'HD') {
            let cas = '';
            for (const f of frame.flags) {
              if (f.charCodeAt(0) === 0x63) {
                cas = f.slice(1); // c
                break;
              }
            }
            stored.push({ j, t, cas, at: performance.now() });
          }
        },
        (error: BatchError) => {
          n++;
          this.skip(/too large/i.test(error.message) ? 'too-large' : 'failed');
        },
      );
    } catch (err) {
      // The keys stored before the failure are returned through the error so the guard still checks them.
      this.skip('exists', notStored);
      this.skip('failed', batch.length - n);
      throw new WriteFailure(err, stored);
    }
    this.skip('exists', notStored);
    return stored;
  }

  /**
   * Asks the source again for every key the batch stored and takes back the
   * copy's value where the source no longer holds what was read. When the
   * source cannot be asked, nothing the batch wrote can be vouched for, and
   * all of it is taken back.
   */
  private async guard(
    source: BatchLink,
    keys: Buffer[],
    got: FetchedBatch,
    written: Int32Array,
    stored: Stored[],
    mark: number,
  ): Promise<void> {
    if (stored.length === 0) return;
    // Value bytes written, whether or not the second look takes some of them back.
    for (const s of stored) this.bytes += got.values[s.j]!.length;
    if (this.options.guard === false) {
      this.copied += stored.length;
      return;
    }
    const freshness = this.options.freshness;
    let again: FetchedBatch | undefined;
    let failure: unknown;
    // A server started with -C keeps no CAS (it reports 0): there the value and flags are compared instead.
    const noCas = new Uint8Array(stored.length);
    let anyNoCas = false;
    for (const [n, s] of stored.entries()) {
      const cas = got.cas[s.j];
      if (cas === undefined || cas === '0') {
        noCas[n] = 1;
        anyNoCas = true;
      }
    }
    try {
      const asked = stored.map((s) => keys[s.j]!);
      again = anyNoCas ? await source.fetch(asked, noCas, true) : await source.look(asked);
    } catch (err) {
      failure = err;
    }
    const now = performance.now();
    const back: Stored[] = [];
    for (let n = 0; n < stored.length; n++) {
      const s = stored[n]!;
      if (!again || again.hit[n] === 0 || again.cas[n] !== got.cas[s.j]) back.push(s);
      else if (
        noCas[n] === 1 &&
        (again.flags[n] !== got.flags[s.j] || !again.values[n]!.equals(got.values[s.j]!))
      )
        back.push(s);
      else if (freshness?.changedSince(keys[s.j]!, mark)) back.push(s);
      else {
        // A TTL shortened on the source (touch) since the read: the copy would outlive it.
        const left = again.ttl[n]!;
        const wrote = written[s.j]!;
        const since = Math.floor((now - s.at) / 1000);
        if (left >= 0 && (wrote === 0 || wrote - since > left + 2)) back.push(s);
      }
    }
    this.copied += stored.length - back.length;
    this.skip('changed-during-copy', back.length);
    if (back.length > 0) await this.takeBack(keys, back);
    if (failure !== undefined) throw failure;
  }

  /** Deletes the copy's own values (CAS-guarded: a value written since stays). */
  private async takeBack(keys: Buffer[], back: Stored[]): Promise<void> {
    const byTarget = new Map<number, RequestBuilder>();
    for (const s of back) {
      let md = byTarget.get(s.t);
      if (!md) byTarget.set(s.t, (md = new RequestBuilder()));
      md.ascii('md ');
      const base64 = md.key(keys[s.j]!);
      md.ascii(`${base64 ? ' b' : ''} C${s.cas} q\r\n`);
    }
    await Promise.all(
      [...byTarget].map(([t, md]) =>
        this.targets[t]!.send(
          md.finish(),
          'md batch',
          () => undefined,
          () => undefined,
        ),
      ),
    );
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

/** A key a batch stored on target `t`, with the target's CAS for a guarded take-back. */
interface Stored {
  readonly j: number;
  readonly t: number;
  readonly cas: string;
  /** When the target confirmed the write (performance.now()). */
  readonly at: number;
}

/** A target's share of a batch failed; what it had stored before is still guarded. */
class WriteFailure extends Error {
  constructor(
    readonly reason: unknown,
    readonly stored: Stored[],
  ) {
    super(reason instanceof Error ? reason.message : String(reason));
  }
}

function startsWith(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}
