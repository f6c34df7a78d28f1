/**
 * An application model for the demo and the migration scenarios: Zipf key
 * popularity, a read/write/delete mix, TTLs and values of varied sizes, and a
 * simulated database that fills the cache on a miss (cache-aside), driven
 * through a real client against a pool.
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
    writes: 0,
    deletes: 0,
    errors: 0,
  };
  readonly zipf: Zipf;
  private readonly versions: Uint32Array;
  private inFlight = 0;
  private running = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private cache: PoolClient,
    readonly options: WorkloadOptions = DEFAULT_WORKLOAD,
    private readonly random: () => number = Math.random,
  ) {
    this.zipf = new Zipf(options.keys, options.skew, random);
    this.versions = new Uint32Array(options.keys);
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

  /** Points the application at another pool: the cut-over. */
  switchTo(cache: PoolClient): void {
    this.cache = cache;
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

  /** One application request, by the mix. */
  async request(): Promise<void> {
    const rank = this.zipf.next();
    const key = this.keyOf(rank);
    const client = this.cache.clientFor(key);
    const roll = this.random();
    try {
      if (roll < this.options.readShare) {
        this.counters.reads++;
        const item = await client.get(key);
        if (item) {
          this.counters.hits++;
          return;
        }
        this.counters.misses++;
        this.counters.databaseReads++;
        await client.set(key, this.valueOf(rank), { exptime: this.options.ttlSeconds });
      } else if (roll < this.options.readShare + this.options.writeShare) {
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
