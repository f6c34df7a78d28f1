import { MemcachedClient } from '../net/client.js';
import { parseEndpoint } from '../net/address.js';
import { MemshiftError } from '../protocol/errors.js';

/** What `memshift stats` reports for one instance that answered. */
export interface InstanceStats {
  readonly address: string;
  readonly up: true;
  readonly version: string;
  readonly uptimeSeconds: number;
  /** The server's clock (unix seconds): expiry times in dumps are in this clock, not ours. */
  readonly serverTime: number;
  readonly items: number;
  readonly bytes: number;
  readonly limitBytes: number;
  readonly getHits: number;
  readonly getMisses: number;
  /** get_hits / (get_hits + get_misses) since the server started; undefined before any get. */
  readonly hitRatio: number | undefined;
  readonly connections: number;
  readonly evictions: number;
  /** Every STAT line, as the server sent it. */
  readonly raw: Record<string, string>;
}

export interface InstanceDown {
  readonly address: string;
  readonly up: false;
  readonly error: string;
}

export type InstanceReport = InstanceStats | InstanceDown;

export interface StatsOptions {
  readonly timeoutMs: number;
}

/** Asks every instance for `stats` at once; an instance that fails is reported down, the others still are. */
export async function collectStats(addresses: string[], options: StatsOptions): Promise<InstanceReport[]> {
  const endpoints = addresses.map((a) => parseEndpoint(a));
  return Promise.all(
    endpoints.map(async (endpoint): Promise<InstanceReport> => {
      const client = new MemcachedClient(endpoint, {
        connectTimeoutMs: options.timeoutMs,
        requestTimeoutMs: options.timeoutMs,
      });
      try {
        return toReport(endpoint.address, await client.stats());
      } catch (err) {
        if (!(err instanceof MemshiftError)) throw err;
        return { address: endpoint.address, up: false, error: err.message };
      } finally {
        client.destroy();
      }
    }),
  );
}

function toReport(address: string, stats: Map<string, string>): InstanceStats {
  const num = (name: string): number => {
    const value = Number(stats.get(name));
    return Number.isFinite(value) ? value : 0;
  };
  const hits = num('get_hits');
  const misses = num('get_misses');
  return {
    address,
    up: true,
    version: stats.get('version') ?? '?',
    uptimeSeconds: num('uptime'),
    serverTime: num('time'),
    items: num('curr_items'),
    bytes: num('bytes'),
    limitBytes: num('limit_maxbytes'),
    getHits: hits,
    getMisses: misses,
    hitRatio: hits + misses > 0 ? hits / (hits + misses) : undefined,
    connections: num('curr_connections'),
    evictions: num('evictions'),
    raw: Object.fromEntries(stats),
  };
}
