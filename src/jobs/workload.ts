/**
 * An application model for the demo and the migration scenarios: Zipf key
 * popularity, a read/write/delete mix, TTLs and values of varied sizes, and a
 * simulated database that fills the cache on a miss (cache-aside), driven
 * through real clients against a pool. The application runs on several hosts
 * (independent clients, each pointed at a pool of its own, switched one by one
 * in a rolling deploy), and every hit is checked against the database: a value
 * older than the database's version when the read was issued is a stale hit.
 */
import type { PoolClient } from '../net/pool-client.js';

/** Samples key ranks 0..n-1 with P(rank k) proportional to 1/(k+1)^skew. */
export class Zipf {
  private readonly cdf: Float64Array;

  constructor(
    readonly keys: number,
    readonly skew: number,
    private readonly random: () => number = Math.random,
  ) {
    this.cdf = new Float64Array(keys);
    let sum = 0;
    for (let k = 0; k < keys; k++) {
      sum += 1 / Math.pow(k + 1, skew);
      this.cdf[k] = sum;
    }
    for (let k = 0; k < keys; k++) this.cdf[k] = (this.cdf[k] as number) / sum;
  }

  next(): number {
    const u = this.random();
    let lo = 0;
    let hi = this.keys - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.cdf[mid] as number) < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export interface WorkloadOptions {
  /** Distinct keys the application uses. */
  readonly keys: number;
  readonly skew: number;
  /** Shares of reads and writes; the rest are deletes. */
  readonly readShare: number;
  readonly writeShare: number;
  /** Requests per second the application makes (bounded load). */
  readonly rate: number;
  /** Most requests in flight at once. */
  readonly concurrency: number;
  readonly ttlSeconds: number;
  readonly minValueBytes: number;
  readonly maxValueBytes: number;
  readonly keyPrefix: string;
}

export const DEFAULT_WORKLOAD: WorkloadOptions = Object.freeze({
  keys: 20_000,
  skew: 0.99,
  readShare: 0.9,
  writeShare: 0.08,
  rate: 4000,
  concurrency: 64,
  ttlSeconds: 3600,
  minValueBytes: 50,
  maxValueBytes: 2000,
  keyPrefix: 'app:item:',
});

export interface WorkloadCounters {
  reads: number;
  hits: number;
  misses: number;
  /** Reads the database served because the cache missed. */
  databaseReads: number;
  /** Hits whose value was older than the database's version when the read was issued. */
  staleHits: number;
  writes: number;
  deletes: number;
  errors: number;
}

/**
 * The application: reads go to the cache and fall back to the database (and
 * store what they read); writes update the database and set the cache;
 * deletes invalidate the cache. The database is a version per key, so a value
 * is always derivable from (key, version).
 */
export class Application {
  readonly counters: WorkloadCounters = {
    reads: 0,
    hits: 0,
    misses: 0,
    databaseReads: 0,
    staleHits: 0,
    writes: 0,
    deletes: 0,
    errors: 0,
  };
  readonly zipf: Zipf;
  private readonly versions: Uint32Array;
  private inFlight = 0;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  /** The pool each application host uses now. */
  private readonly caches: PoolClient[];

  /** One cache client per application host (one host when a single client is given). */
  constructor(
    cache: PoolClient | readonly PoolClient[],
    readonly options: WorkloadOptions = DEFAULT_WORKLOAD,
    private readonly random: () => number = Math.random,
  ) {
    this.caches = Array.isArray(cache) ? [...(cache as readonly PoolClient[])] : [cache as PoolClient];
    if (this.caches.length === 0) throw new Error('an application needs at least one host');
    this.zipf = new Zipf(options.keys, options.skew, random);
    this.versions = new Uint32Array(options.keys);
  }

  get hosts(): number {
    return this.caches.length;
  }

  keyOf(rank: number): string {
    return `${this.options.keyPrefix}${rank}`;
  }

  /** The value the database holds for a key: its size depends on the key, its bytes on the version. */
  valueOf(rank: number): Buffer {
    const { minValueBytes: min, maxValueBytes: max } = this.options;
    const size = min + (((rank * 2654435761) >>> 0) % Math.max(1, max - min + 1));
    return Buffer.alloc(size, `${rank}:${this.versions[rank]}|`);
  }

  /** Points every host at another pool at once (a list: one client per host): the instant cut-over. */
  switchTo(cache: PoolClient | readonly PoolClient[]): void {
    for (let host = 0; host < this.caches.length; host++) {
      this.caches[host] = Array.isArray(cache)
        ? (cache as readonly PoolClient[])[host]!
        : (cache as PoolClient);
    }
  }

  /** Points one host at another pool: one step of a rolling deploy. */
  switchHost(host: number, cache: PoolClient): void {
    if (host >= 0 && host < this.caches.length) this.caches[host] = cache;
  }

  /** The database changes behind the cache (another service writing it): the cache is not told. */
  advanceVersion(rank: number): void {
    this.versions[rank] = (this.versions[rank] as number) + 1;
  }

  /** The database version a cached value was made from (values are `rank:version|` repeated). */
  static versionOf(value: Buffer): number | undefined {
    const end = value.indexOf(0x7c); // |
    const colon = end < 0 ? -1 : value.lastIndexOf(0x3a, end); // :
    if (colon < 0) return undefined;
    const version = Number(value.toString('latin1', colon + 1, end));
    return Number.isInteger(version) ? version : undefined;
  }

  /** Whether a cached value is the database's current one. */
  isCurrent(rank: number, value: Buffer): boolean {
    return Application.versionOf(value) === this.versions[rank];
  }

  /** Issues requests at the configured rate until stop(); never more than `concurrency` at once. */
  start(): void {
    if (this.running) return;
    this.running = true;
    const tickMs = 10;
    const perTick = this.options.rate * (tickMs / 1000);
    let owed = 0;
    this.timer = setInterval(() => {
      owed += perTick;
      while (owed >= 1 && this.inFlight < this.options.concurrency) {
        owed -= 1;
        this.inFlight++;
        void this.request().finally(() => this.inFlight--);
      }
      owed = Math.min(owed, perTick * 10);
    }, tickMs);
  }

  /** Stops issuing requests and waits for those in flight. */
  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.timer);
    while (this.inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  }

  /** One application request, by the mix, from a host chosen at random. */
  async request(): Promise<void> {
    const rank = this.zipf.next();
    const host = Math.floor(this.random() * this.caches.length);
    const roll = this.random();
    if (roll < this.options.readShare) return void (await this.read(rank, host));
    const key = this.keyOf(rank);
    const client = (this.caches[host] as PoolClient).clientFor(key);
    try {
      if (roll < this.options.readShare + this.options.writeShare) {
        this.counters.writes++;
        this.versions[rank] = (this.versions[rank] as number) + 1;
        await client.set(key, this.valueOf(rank), { exptime: this.options.ttlSeconds });
      } else {
        this.counters.deletes++;
        this.versions[rank] = (this.versions[rank] as number) + 1;
        await client.delete(key);
      }
    } catch {
      this.counters.errors++;
    }
  }

  /**
   * A cache-aside read from one host: a hit is checked against the version the
   * database had when the read was issued (a later write may race the reply);
   * a miss reads the database and stores what it read.
   */
  async read(rank: number, host = 0): Promise<'hit' | 'stale' | 'miss' | 'error'> {
    const key = this.keyOf(rank);
    const client = (this.caches[host] ?? (this.caches[0] as PoolClient)).clientFor(key);
    const versionAtRead = this.versions[rank] as number;
    this.counters.reads++;
    try {
      const item = await client.get(key);
      if (item) {
        this.counters.hits++;
        const version = Application.versionOf(item.value);
        if (version === undefined || version < versionAtRead) {
          this.counters.staleHits++;
          return 'stale';
        }
        return 'hit';
      }
      this.counters.misses++;
      this.counters.databaseReads++;
      await client.set(key, this.valueOf(rank), { exptime: this.options.ttlSeconds });
      return 'miss';
    } catch {
      this.counters.errors++;
      return 'error';
    }
  }

  /**
   * Values a pool holds for the application's keys, checked key by key against
   * the database: `stale` ones are not its current version.
   */
  async staleValues(pool: PoolClient): Promise<{ present: number; stale: number }> {
    let present = 0;
    let stale = 0;
    const batch = 2000;
    for (let start = 0; start < this.options.keys; start += batch) {
      const reads: Promise<void>[] = [];
      for (let rank = start; rank < Math.min(this.options.keys, start + batch); rank++) {
        const key = this.keyOf(rank);
        reads.push(
          pool
            .clientFor(key)
            .get(key)
            .then((item) => {
              if (!item) return;
              present++;
              if (!this.isCurrent(rank, item.value)) stale++;
            }),
        );
      }
      await Promise.all(reads);
    }
    return { present, stale };
  }
}

/**
 * The hit ratio the application would get from `pool` right now: `samples`
 * keys drawn by popularity, each looked up (an `mg` without the value) on the
 * server the pool's distribution picks.
 */
export async function wouldHitRatio(app: Application, pool: PoolClient, samples: number): Promise<number> {
  const lookups: Promise<boolean>[] = [];
  for (let i = 0; i < samples; i++) {
    const key = app.keyOf(app.zipf.next());
    lookups.push(
      pool
        .clientFor(key)
        .mg(key, [])
        .then(
          (reply) => reply.code === 'HD',
          () => false,
        ),
    );
  }
  const found = await Promise.all(lookups);
  return found.filter(Boolean).length / Math.max(1, samples);
}
