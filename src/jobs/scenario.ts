/**
 * The migration scenario: for each strategy, a fresh old pool warmed by an
 * application, a new pool of another shape, the strategy run, then the
 * application switched to the new pool and its hit ratio measured second by
 * second, with the database reads it caused. `memshift demo` and
 * bench/scenario.ts run it.
 *
 * Strategies:
 * - big-bang: switch to the empty new pool at once;
 * - instance-by-instance: swap one server per step (the application is
 *   reconfigured at every step), new servers beyond the old count added last;
 * - mirror: `memshift mirror` for a window, then switch;
 * - mirror+backfill: the same, with the existing keys copied during the window;
 * - proxy-shadow: the application talks to `memshift proxy` (old pool answers,
 *   new pool shadowed) for the window, then to the new pool.
 */
import type { MemcachedServer } from './local-memcached.js';
import { startMemcached } from './local-memcached.js';
import { PoolClient } from '../net/pool-client.js';
import { parsePoolSpec, type Pool } from '../topology/pool.js';
import { MirrorJob } from './mirror.js';
import { Proxy } from './proxy.js';
import { runVerify } from './verify.js';
import { Application, DEFAULT_WORKLOAD, wouldHitRatio, type WorkloadOptions } from './workload.js';

export const STRATEGIES = [
  'big-bang',
  'instance-by-instance',
  'mirror',
  'mirror+backfill',
  'proxy-shadow',
] as const;
export type Strategy = (typeof STRATEGIES)[number];

export interface ScenarioOptions {
  readonly oldServers: number;
  readonly newServers: number;
  /** The application's client hashing, for both pools. */
  readonly hash: string;
  readonly workload: WorkloadOptions;
  /** Seconds the application runs on the (preloaded) old pool before the migration starts. */
  readonly warmupSeconds: number;
  /** Seconds the migration runs before cut-over (the mirror window, the instance-by-instance steps). */
  readonly windowSeconds: number;
  /** Seconds measured after cut-over. */
  readonly afterSeconds: number;
  readonly strategies: readonly Strategy[];
  /** Capture interface for the mirror strategies. */
  readonly interface: string;
}

export const DEFAULT_SCENARIO: ScenarioOptions = Object.freeze({
  oldServers: 2,
  newServers: 3,
  hash: 'libmemcached-ketama',
  workload: { ...DEFAULT_WORKLOAD, keys: 20_000, rate: 3000 },
  warmupSeconds: 4,
  windowSeconds: 6,
  afterSeconds: 10,
  strategies: STRATEGIES,
  interface: 'lo',
});

export interface StrategyResult {
  readonly strategy: Strategy;
  /** The memcached instances it ran on, old pool first (all stopped when it returns). */
  readonly servers: string[];
  /** Hit ratio over the warm-up's last seconds, on the old pool. */
  readonly before: number;
  /** Per second after cut-over. */
  readonly after: number[];
  /** Per second of the window: the hit ratio the new pool would give (mirror strategies), or the application's. */
  readonly window: number[];
  /** The hit ratio the new pool gives at the moment of cut-over (sampled by popularity, before any miss refills it). */
  readonly start: number;
  readonly firstSecond: number;
  /** Over the whole measured time after cut-over (a minute, or less when `afterSeconds` is shorter). */
  readonly firstMinute: number;
  /** Seconds after cut-over until a second's hit ratio is back within 1% of `before`; undefined if never. */
  readonly recoverySeconds: number | undefined;
  /** Database reads (cache misses) after cut-over. */
  readonly databaseReads: number;
  /** Value bytes the backfill copied. */
  readonly bytesCopied: number;
  /** What `memshift verify` said just before cut-over: key coverage and recently-used coverage. */
  readonly verify: { readonly coverage: number; readonly recentCoverage: number } | undefined;
}

export interface ScenarioReport {
  readonly options: ScenarioOptions;
  readonly results: StrategyResult[];
}

export interface ScenarioEvents {
  onPhase?(strategy: Strategy, phase: 'warm-up' | 'window' | 'after', second: number, hitRatio: number): void;
  onResult?(result: StrategyResult): void;
}

/** Runs every strategy in turn; each starts its own servers and stops them. */
export async function runScenario(
  options: ScenarioOptions = DEFAULT_SCENARIO,
  events: ScenarioEvents = {},
): Promise<ScenarioReport> {
  const results: StrategyResult[] = [];
  for (const strategy of options.strategies) {
    const result = await runStrategy(strategy, options, events);
    results.push(result);
    events.onResult?.(result);
  }
  return { options, results };
}

/** Hit ratio of the application's reads between two snapshots of its counters. */
function hitRatio(now: Application['counters'], then: Application['counters']): number {
  const reads = now.reads - then.reads;
  return reads > 0 ? (now.hits - then.hits) / reads : 0;
}

async function runStrategy(
  strategy: Strategy,
  options: ScenarioOptions,
  events: ScenarioEvents,
): Promise<StrategyResult> {
  const servers: MemcachedServer[] = [];
  const clients: PoolClient[] = [];
  let mirror: MirrorJob | undefined;
  let proxy: Proxy | undefined;
  let app: Application | undefined;
  try {
    for (let i = 0; i < options.oldServers + options.newServers; i++) servers.push(await startMemcached());
    const oldServers = servers.slice(0, options.oldServers);
    const newServers = servers.slice(options.oldServers);
    const oldPool = poolOf('old', oldServers, options.hash);
    const newPool = poolOf('new', newServers, options.hash);
    const oldClient = new PoolClient(oldPool, { connections: 2 });
    const newClient = new PoolClient(newPool, { connections: 2 });
    clients.push(oldClient, newClient);
    app = new Application(oldClient, options.workload);
    await preload(app, oldClient);

    // Warm-up on the old pool: the level the migration should keep.
    app.start();
    let mark = { ...app.counters };
    const warm: number[] = [];
    for (let s = 1; s <= options.warmupSeconds; s++) {
      await sleep(1000);
      const now = { ...app.counters };
      warm.push(hitRatio(now, mark));
      mark = now;
      events.onPhase?.(strategy, 'warm-up', s, warm[warm.length - 1] as number);
    }
    const tail = warm.slice(-Math.max(1, Math.ceil(warm.length / 2)));
    const before = tail.reduce((a, b) => a + b, 0) / tail.length;

    // The migration window.
    const window: number[] = [];
    if (strategy === 'mirror' || strategy === 'mirror+backfill') {
      mirror = new MirrorJob({
        routes: oldPool.servers.map((s) => ({ sourcePort: s.port, target: newPool, mapped: false })),
        sourceHost: '127.0.0.1',
        interface: options.interface,
        excludeClients: [],
        drainMs: 5000,
        backfill: strategy === 'mirror+backfill' ? {} : undefined,
        replay: {
          fill: true,
          fillWindowMs: 60_000,
          fillRatePerSecond: 20_000,
          includeReads: false,
          flush: 'skip',
          maxQueuedPerServer: 100_000,
          maxRememberedKeys: 100_000,
        },
      });
      await mirror.start();
      for (let s = 1; s <= options.windowSeconds; s++) {
        await sleep(1000);
        window.push(await wouldHitRatio(app, newClient, 500));
        events.onPhase?.(strategy, 'window', s, window[window.length - 1] as number);
      }
      if (strategy === 'mirror+backfill') await waitForBackfill(mirror, 60_000);
    } else if (strategy === 'proxy-shadow') {
      proxy = new Proxy({
        mode: 'shadow',
        primary: oldPool,
        secondary: newPool,
        listen: { host: '127.0.0.1', port: 0 },
      });
      const { port } = await proxy.start();
      const viaProxy = new PoolClient(parsePoolSpec(`127.0.0.1:${port}`, options.hash, { name: 'proxy' }), {
        connections: 2,
      });
      clients.push(viaProxy);
      app.switchTo(viaProxy);
      for (let s = 1; s <= options.windowSeconds; s++) {
        await sleep(1000);
        window.push(await wouldHitRatio(app, newClient, 500));
        events.onPhase?.(strategy, 'window', s, window[window.length - 1] as number);
      }
    } else if (strategy === 'instance-by-instance') {
      const steps = stepPools(oldPool, newPool, options.hash);
      const perStep = Math.max(1, Math.floor(options.windowSeconds / steps.length));
      for (const [i, servers] of steps.entries()) {
        if (i === steps.length - 1) break; // the last step is the cut-over itself
        const stepClient = new PoolClient(servers, { connections: 2 });
        clients.push(stepClient);
        app.switchTo(stepClient);
        for (let s = 0; s < perStep; s++) {
          const then = { ...app.counters };
          await sleep(1000);
          window.push(hitRatio(app.counters, then));
          events.onPhase?.(strategy, 'window', window.length, window[window.length - 1] as number);
        }
      }
    }

    // Just before cut-over: what verify would tell the operator.
    const verify =
      strategy === 'big-bang'
        ? undefined
        : await runVerify({ from: oldPool, to: newPool, sample: 200, checkPlacement: false }).then(
            (r) => ({ coverage: r.keys.coverage, recentCoverage: r.recent.coverage }),
            () => undefined,
          );
    // Cut-over: the application now uses the new pool; mirroring is stopped once it has switched.
    const start = await wouldHitRatio(app, newClient, 1000);
    app.switchTo(newClient);
    const atCutOver = { ...app.counters };
    const stopping = mirror?.stop();
    mirror = undefined;
    const proxyStopping = proxy?.stop();
    proxy = undefined;
    const after: number[] = [];
    mark = atCutOver;
    for (let s = 1; s <= options.afterSeconds; s++) {
      await sleep(1000);
      const now = { ...app.counters };
      after.push(hitRatio(now, mark));
      mark = now;
      events.onPhase?.(strategy, 'after', s, after[after.length - 1] as number);
    }
    await app.stop();
    const summary = await stopping;
    await proxyStopping;
    const bytesCopied = (summary?.backfill ?? []).reduce((n, b) => n + (b.report?.bytes ?? 0), 0);
    const end = app.counters;
    const recovered = after.findIndex((r) => r >= before * 0.99);
    return {
      strategy,
      servers: servers.map((server) => server.address),
      before,
      after,
      window,
      start,
      firstSecond: after[0] ?? 0,
      firstMinute: hitRatio(end, atCutOver),
      recoverySeconds: recovered < 0 ? undefined : recovered + 1,
      databaseReads: end.databaseReads - atCutOver.databaseReads,
      bytesCopied,
      verify,
    };
  } finally {
    await app?.stop();
    await mirror?.stop().catch(() => undefined);
    await proxy?.stop().catch(() => undefined);
    for (const c of clients) c.destroy();
    await Promise.all(servers.map((s) => s.stop()));
  }
}

/** Every key written once, as a cache that has been serving for a while would hold them. */
async function preload(app: Application, pool: PoolClient): Promise<void> {
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

async function waitForBackfill(mirror: MirrorJob, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const states = mirror.summary().backfill ?? [];
    if (states.every((b) => b.report !== undefined || b.error !== undefined)) return;
    await sleep(100);
  }
}

function poolOf(name: string, servers: MemcachedServer[], hash: string): Pool {
  return parsePoolSpec(servers.map((s) => s.address).join(','), hash, {
    name,
    where: `scenario ${name} pool`,
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
