/**
 * The polling half of `memshift top`: asks every instance of every group for
 * `stats` each interval over a connection kept open between polls, and turns
 * two successive replies into per-interval figures (hit ratio over the last
 * interval, not since boot; gets, sets, evictions and bytes per second) plus
 * per-pool totals and the new pool's fill against the old one.
 *
 * Counter names and meanings come from reference/memcached-protocol.txt,
 * "General-purpose statistics".
 */
import { performance } from 'node:perf_hooks';
import { MemcachedClient } from '../net/client.js';
import { parseEndpoint } from '../net/address.js';
import { MemshiftError } from '../protocol/errors.js';

/** Instances shown together (a pool). The first group is the old pool, the last the new one. */
export interface TopGroup {
  readonly name: string;
  readonly addresses: readonly string[];
}

/** The cumulative counters of one `stats` reply that top and the metrics use. */
export interface InstanceCounters {
  readonly getHits: number;
  readonly getMisses: number;
  readonly cmdGet: number;
  readonly cmdSet: number;
  readonly evictions: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

export interface InstanceUp {
  readonly address: string;
  readonly pool: string;
  readonly up: true;
  readonly version: string;
  readonly uptimeSeconds: number;
  /** The server's clock, unix seconds. */
  readonly serverTime: number;
  readonly items: number;
  readonly bytes: number;
  readonly limitBytes: number;
  readonly connections: number;
  /** Round trip of the `stats` call, milliseconds. */
  readonly rttMs: number;
  readonly counters: InstanceCounters;
  /** Every STAT line as sent, for the metrics (memcached_exporter's names come from several). */
  readonly raw: Readonly<Record<string, string>>;
  /** Per-second rates and the hit ratio over the last interval; undefined on the first poll or after a restart. */
  readonly rates: IntervalRates | undefined;
}

export interface IntervalRates {
  readonly seconds: number;
  /** get_hits / (get_hits + get_misses) within the interval; undefined when no get came in. */
  readonly hitRatio: number | undefined;
  /** get_hits + get_misses within the interval. */
  readonly lookups: number;
  readonly getsPerSec: number;
  readonly setsPerSec: number;
  readonly evictionsPerSec: number;
  readonly readBytesPerSec: number;
  readonly writtenBytesPerSec: number;
}

export interface InstanceDownRow {
  readonly address: string;
  readonly pool: string;
  readonly up: false;
  /** Why: connection refused, timed out after N ms, ... */
  readonly error: string;
}

export type InstanceRow = InstanceUp | InstanceDownRow;

export interface PoolTotals {
  readonly items: number;
  readonly bytes: number;
  readonly limitBytes: number;
  readonly connections: number;
  readonly getsPerSec: number;
  readonly setsPerSec: number;
  readonly evictionsPerSec: number;
  readonly readBytesPerSec: number;
  readonly writtenBytesPerSec: number;
}

export interface PoolSummary {
  readonly name: string;
  readonly instances: readonly InstanceRow[];
  readonly up: number;
  readonly down: number;
  /** Sums over the instances that answered. */
  readonly totals: PoolTotals;
  /** Pool hit ratio over the interval (all hits / all gets), undefined without gets. */
  readonly hitRatio: number | undefined;
  /** Mean stats round trip over the instances that answered, ms. */
  readonly meanRttMs: number | undefined;
  /** Mean items per answering instance. */
  readonly meanItems: number | undefined;
}

/** The new pool (last group) against the old one (first group). */
export interface PoolFill {
  readonly from: string;
  readonly to: string;
  /** new items / old items; undefined when the old pool holds none. */
  readonly items: number | undefined;
  readonly bytes: number | undefined;
}

export interface TopSnapshot {
  /** When the poll finished, ms since the epoch. */
  readonly time: number;
  /** Polls made so far, this one included. */
  readonly poll: number;
  readonly pools: readonly PoolSummary[];
  readonly fill: PoolFill | undefined;
}

export interface TopOptions {
  /** Connect and reply timeout for each `stats` call; a slower instance is shown DOWN. */
  readonly timeoutMs: number;
}

/** One reply's counters and when it came (performance.now() ms). */
export interface CounterSample {
  readonly at: number;
  readonly uptime: number;
  readonly counters: InstanceCounters;
}

interface Tracked {
  readonly pool: string;
  readonly address: string;
  readonly client: MemcachedClient;
  previous: CounterSample | undefined;
}

/**
 * Polls a fixed set of instances. One `poll()` at a time: the caller owns the
 * interval (a view pauses, a script polls twice for `--once`).
 */
export class TopPoller {
  readonly groups: readonly TopGroup[];
  private readonly tracked: Tracked[] = [];
  private polls = 0;
  private latest: TopSnapshot | undefined;

  constructor(groups: readonly TopGroup[], options: TopOptions) {
    if (groups.length === 0 || groups.every((g) => g.addresses.length === 0)) {
      throw new MemshiftError('MEMSHIFT_ERR_USAGE', 'top needs at least one instance or pool');
    }
    this.groups = groups;
    for (const group of groups) {
      for (const address of group.addresses) {
        const endpoint = parseEndpoint(address);
        const client = new MemcachedClient(endpoint, {
          connectTimeoutMs: options.timeoutMs,
          requestTimeoutMs: options.timeoutMs,
          // A down instance is asked again every interval, not after a long backoff.
          backoffInitialMs: 50,
          backoffMaxMs: 500,
          maxPending: 4,
        });
        this.tracked.push({ pool: group.name, address: endpoint.address, client, previous: undefined });
      }
    }
  }

  /** The last snapshot polled, if any. */
  get snapshot(): TopSnapshot | undefined {
    return this.latest;
  }

  async poll(): Promise<TopSnapshot> {
    const rows = await Promise.all(this.tracked.map((t) => this.pollOne(t)));
    this.polls++;
    const pools = this.groups.map((group) =>
      summarize(
        group.name,
        rows.filter((r) => r.pool === group.name),
      ),
    );
    const first = pools[0];
    const last = pools[pools.length - 1];
    const fill =
      first && last && pools.length > 1
        ? {
            from: first.name,
            to: last.name,
            items: ratio(last.totals.items, first.totals.items),
            bytes: ratio(last.totals.bytes, first.totals.bytes),
          }
        : undefined;
    this.latest = { time: Date.now(), poll: this.polls, pools, fill };
    return this.latest;
  }

  close(): void {
    for (const t of this.tracked) t.client.destroy();
  }

  private async pollOne(t: Tracked): Promise<InstanceRow> {
    const started = performance.now();
    let stats: Map<string, string>;
    try {
      stats = await t.client.stats();
    } catch (err) {
      if (!(err instanceof MemshiftError)) throw err;
      t.previous = undefined;
      return { address: t.address, pool: t.pool, up: false, error: reason(err, t.address) };
    }
    const at = performance.now();
    const num = (name: string): number => {
      const value = Number(stats.get(name));
      return Number.isFinite(value) ? value : 0;
    };
    const counters: InstanceCounters = {
      getHits: num('get_hits'),
      getMisses: num('get_misses'),
      cmdGet: num('cmd_get'),
      cmdSet: num('cmd_set'),
      evictions: num('evictions'),
      bytesRead: num('bytes_read'),
      bytesWritten: num('bytes_written'),
    };
    const uptime = num('uptime');
    const rates = t.previous ? intervalRates(t.previous, { at, uptime, counters }) : undefined;
    t.previous = { at, uptime, counters };
    return {
      address: t.address,
      pool: t.pool,
      up: true,
      version: stats.get('version') ?? '?',
      uptimeSeconds: uptime,
      serverTime: num('time'),
      items: num('curr_items'),
      bytes: num('bytes'),
      limitBytes: num('limit_maxbytes'),
      connections: num('curr_connections'),
      rttMs: at - started,
      counters,
      raw: Object.fromEntries(stats),
      rates,
    };
  }
}

/** The error text without the address the row already shows (a redial's error quotes the first). */
function reason(err: MemshiftError, address: string): string {
  return err.message.split(`${address}: `).join('');
}

function ratio(part: number, whole: number): number | undefined {
  return whole > 0 ? part / whole : undefined;
}

/**
 * Rates between two replies. A server that restarted in between (uptime went
 * back, or a counter did) has no meaningful difference: no rates this time.
 */
export function intervalRates(before: CounterSample, now: CounterSample): IntervalRates | undefined {
  const seconds = (now.at - before.at) / 1000;
  if (seconds <= 0 || now.uptime < before.uptime) return undefined;
  const a = before.counters;
  const b = now.counters;
  const delta = (name: keyof InstanceCounters): number => b[name] - a[name];
  for (const name of Object.keys(b) as (keyof InstanceCounters)[]) if (delta(name) < 0) return undefined;
  const hits = delta('getHits');
  const misses = delta('getMisses');
  return {
    seconds,
    hitRatio: ratio(hits, hits + misses),
    lookups: hits + misses,
    getsPerSec: delta('cmdGet') / seconds,
    setsPerSec: delta('cmdSet') / seconds,
    evictionsPerSec: delta('evictions') / seconds,
    readBytesPerSec: delta('bytesRead') / seconds,
    writtenBytesPerSec: delta('bytesWritten') / seconds,
  };
}

function summarize(name: string, instances: InstanceRow[]): PoolSummary {
  const totals = {
    items: 0,
    bytes: 0,
    limitBytes: 0,
    connections: 0,
    getsPerSec: 0,
    setsPerSec: 0,
    evictionsPerSec: 0,
    readBytesPerSec: 0,
    writtenBytesPerSec: 0,
  };
  let up = 0;
  let rtt = 0;
  let hits = 0;
  let gets = 0;
  for (const row of instances) {
    if (!row.up) continue;
    up++;
    rtt += row.rttMs;
    totals.items += row.items;
    totals.bytes += row.bytes;
    totals.limitBytes += row.limitBytes;
    totals.connections += row.connections;
    const r = row.rates;
    if (!r) continue;
    totals.getsPerSec += r.getsPerSec;
    totals.setsPerSec += r.setsPerSec;
    totals.evictionsPerSec += r.evictionsPerSec;
    totals.readBytesPerSec += r.readBytesPerSec;
    totals.writtenBytesPerSec += r.writtenBytesPerSec;
    if (r.hitRatio !== undefined) {
      hits += r.hitRatio * r.lookups;
      gets += r.lookups;
    }
  }
  return {
    name,
    instances,
    up,
    down: instances.length - up,
    totals,
    hitRatio: gets > 0 ? hits / gets : undefined,
    meanRttMs: up > 0 ? rtt / up : undefined,
    meanItems: up > 0 ? totals.items / up : undefined,
  };
}
