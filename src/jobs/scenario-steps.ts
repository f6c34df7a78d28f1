/**
 * The pieces of the migration scenario (scenario.ts) that are not its plot:
 * measuring the application second by second, the two-way mirror's settings,
 * the preload, the instance-by-instance steps.
 */
import type { MemcachedServer } from './local-memcached.js';
import type { MirrorJob, MirrorOptions } from './mirror.js';
import type { PoolClient } from '../net/pool-client.js';
import { parsePortRange } from '../replay/two-way.js';
import { parsePoolSpec, type Pool } from '../topology/pool.js';
import type { Application } from './workload.js';
import type { ScenarioOptions } from './scenario.js';

/** The local ports the scenario's two-way mirrors bind (outside Linux's default ephemeral range). */
const TWO_WAY_PORTS = parsePortRange('20600-20799');

/** Hit ratio of the application's reads between two snapshots of its counters. */
export function hitRatio(now: Application['counters'], then: Application['counters']): number {
  const reads = now.reads - then.reads;
  return reads > 0 ? (now.hits - then.hits) / reads : 0;
}

/** The application's hit ratio each second for `seconds`; its stale hits each second go to `stale`. */
export async function measure(
  app: Application,
  seconds: number,
  stale: number[],
  onSecond: (second: number, ratio: number) => void,
): Promise<number[]> {
  const out: number[] = [];
  let mark = { ...app.counters };
  for (let s = 1; s <= seconds; s++) {
    await sleep(1000);
    const now = { ...app.counters };
    out.push(hitRatio(now, mark));
    stale.push(now.staleHits - mark.staleHits);
    mark = now;
    onSecond(s, out[out.length - 1] as number);
  }
  return out;
}

/** One side of the scenario's two-way mirror (the routes are the caller's). */
export function mirrorOptions(options: ScenarioOptions, twoWay: boolean): Omit<MirrorOptions, 'routes'> {
  return {
    sourceHost: '127.0.0.1',
    interface: options.interface,
    // Packets delivered at once: the lag between the pools (and so the window in which a host on
    // one side reads what the other side already changed) is milliseconds, not up to a second.
    immediate: true,
    excludeClients: [],
    drainMs: 5000,
    // With immediate capture the mirrors lag by milliseconds on an idle machine; the window widens
    // by itself to three times the lag measured when they fall behind.
    twoWay: twoWay ? { ports: TWO_WAY_PORTS, conflictWindowMs: 500 } : undefined,
    replay: {
      fill: true,
      fillWindowMs: 60_000,
      fillRatePerSecond: 20_000,
      includeReads: false,
      flush: 'skip',
      maxQueuedPerServer: 100_000,
      maxRememberedKeys: 100_000,
    },
  };
}

/** Every key written once, as a cache that has been serving for a while would hold them. */
export async function preload(app: Application, pool: PoolClient): Promise<void> {
  const batch = 2000;
  for (let start = 0; start < app.options.keys; start += batch) {
    const writes: Promise<unknown>[] = [];
    for (let rank = start; rank < Math.min(app.options.keys, start + batch); rank++) {
      const key = app.keyOf(rank);
      writes.push(pool.clientFor(key).set(key, app.valueOf(rank), { exptime: app.options.ttlSeconds }));
    }
    await Promise.all(writes);
  }
}

/** The pools an application uses while servers are swapped one at a time, ending with the new pool. */
export function stepPools(oldPool: Pool, newPool: Pool, hash: string): Pool[] {
  const steps: Pool[] = [];
  const current = oldPool.servers.map((s) => s.address);
  for (let i = 0; i < newPool.servers.length; i++) {
    const address = (newPool.servers[i] as Pool['servers'][number]).address;
    if (i < current.length) current[i] = address;
    else current.push(address);
    steps.push(parsePoolSpec(current.join(','), hash, { name: `step ${i + 1}`, where: 'scenario' }));
  }
  return steps;
}

export async function waitForBackfill(mirror: MirrorJob, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const states = mirror.summary().backfill ?? [];
    if (states.every((b) => b.report !== undefined || b.error !== undefined)) return;
    await sleep(100);
  }
}

export function poolOf(name: string, servers: MemcachedServer[], hash: string): Pool {
  return parsePoolSpec(servers.map((s) => s.address).join(','), hash, {
    name,
    where: `scenario ${name} pool`,
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
