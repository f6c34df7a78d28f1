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
 *
 * The switch is instant (every application host at once) or rolling (hosts
 * one by one over `switchSeconds`, as a deploy does), optionally followed by a
 * rollback (every host back to the old pool). With a rolling switch or a
 * rollback, the mirror strategies run memshift's two-way mirror from the
 * moment the switch begins: old → new goes on, new → old starts, so both pools stay current and a rollback finds the old
 * pool warm and correct. Every hit is checked against the application's
 * database (stale hits, by phase), and at the end every key of both pools is
 * (stale values left).
 */
import type { MemcachedServer } from './local-memcached.js';
import { startMemcached } from './local-memcached.js';
import { PoolClient } from '../net/pool-client.js';
import { parsePoolSpec, type Pool } from '../topology/pool.js';
import { MirrorJob } from './mirror.js';
import { Proxy } from './proxy.js';
import { runVerify } from './verify.js';
import { Application, DEFAULT_WORKLOAD, wouldHitRatio, type WorkloadOptions } from './workload.js';
import {
  hitRatio,
  measure,
  mirrorOptions,
  poolOf,
  preload,
  sleep,
  stepPools,
  waitForBackfill,
} from './scenario-steps.js';

export { stepPools } from './scenario-steps.js';

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
  /** Application hosts (independent clients). */
  readonly hosts: number;
  /** `instant`: every host switches at once; `rolling`: one by one over `switchSeconds`. */
  readonly switchMode: 'instant' | 'rolling';
  readonly switchSeconds: number;
  /** Seconds measured after switching every host back to the old pool; 0: no rollback. */
  readonly rollbackSeconds: number;
}

export const DEFAULT_SCENARIO: ScenarioOptions = Object.freeze({
  oldServers: 2,
  newServers: 3,
  hash: 'libmemcached-ketama',
  workload: { ...DEFAULT_WORKLOAD, keys: 20_000, rate: 3000 },
  warmupSeconds: 3,
  windowSeconds: 6,
  afterSeconds: 10,
  strategies: STRATEGIES,
  interface: 'lo',
  hosts: 10,
  switchMode: 'instant',
  switchSeconds: 5,
  rollbackSeconds: 0,
});

/** Stale hits by phase: before the switch began, while hosts were switching, after, after the rollback. */
export interface StaleHits {
  readonly before: number;
  readonly during: number;
  readonly after: number;
  readonly rollback: number;
}

export interface RollbackResult {
  /** Per second after every host went back to the old pool. */
  readonly after: number[];
  readonly firstSecond: number;
  /** The hit ratio the old pool would give at the moment of rollback. */
  readonly start: number;
}

export interface StrategyResult {
  readonly strategy: Strategy;
  /** The memcached instances it ran on, old pool first (all stopped when it returns). */
  readonly servers: string[];
  /** Hit ratio over the warm-up's last seconds, on the old pool. */
  readonly before: number;
  /** Per second after cut-over (after the last host switched, for a rolling switch). */
  readonly after: number[];
  /** Per second while hosts were switching (rolling switch only). */
  readonly switching: number[];
  /** Stale hits each second from the start of the switch on: switching, after, rollback. */
  readonly staleBySecond: number[];
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
  readonly staleHits: StaleHits;
  /** Hits checked (reads that hit), by the same phases, so stale hits read as a share. */
  readonly hits: StaleHits;
  /** Values left at the end that are not the database's current version, checked key by key. */
  readonly staleValues: { readonly old: number; readonly new: number };
  readonly rollback: RollbackResult | undefined;
  /** Two-way mirroring: keys deleted on a pool because both sides wrote them within the window. */
  readonly conflicts: number;
}

export interface ScenarioReport {
  readonly options: ScenarioOptions;
  readonly results: StrategyResult[];
}

export type ScenarioPhase = 'warm-up' | 'window' | 'switching' | 'after' | 'rollback';

export interface ScenarioEvents {
  onPhase?(strategy: Strategy, phase: ScenarioPhase, second: number, hitRatio: number): void;
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

async function runStrategy(
  strategy: Strategy,
  options: ScenarioOptions,
  events: ScenarioEvents,
): Promise<StrategyResult> {
  const servers: MemcachedServer[] = [];
  const clients: PoolClient[] = [];
  const mirrors: MirrorJob[] = [];
  let proxy: Proxy | undefined;
  let app: Application | undefined;
  const client = (pool: Pool, connections = 1): PoolClient => {
    const c = new PoolClient(pool, { connections });
    clients.push(c);
    return c;
  };
  try {
    for (let i = 0; i < options.oldServers + options.newServers; i++) servers.push(await startMemcached());
    const oldServers = servers.slice(0, options.oldServers);
    const newServers = servers.slice(options.oldServers);
    const oldPool = poolOf('old', oldServers, options.hash);
    const newPool = poolOf('new', newServers, options.hash);
    const oldClient = client(oldPool, 2);
    const newClient = client(newPool, 2);
    // Each application host has clients of its own, to either pool.
    const hosts = Math.max(1, options.hosts);
    const oldHosts = Array.from({ length: hosts }, () => client(oldPool));
    const newHosts = Array.from({ length: hosts }, () => client(newPool));
    app = new Application(oldHosts, options.workload);
    await preload(app, oldClient);
    const mirrored = strategy === 'mirror' || strategy === 'mirror+backfill';

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
    // Both pools are written only during a rolling switch, or again after a rollback: only then
    // does the scenario need the new → old direction (an instant switch moves every host at once).
    const twoWay = options.switchMode === 'rolling' || options.rollbackSeconds > 0;
    if (mirrored) {
      const forward = new MirrorJob({
        ...mirrorOptions(options, twoWay),
        routes: oldPool.servers.map((s) => ({ sourcePort: s.port, target: newPool, mapped: false })),
        backfill: strategy === 'mirror+backfill' ? {} : undefined,
      });
      mirrors.push(forward);
      await forward.start();
      for (let s = 1; s <= options.windowSeconds; s++) {
        await sleep(1000);
        window.push(await wouldHitRatio(app, newClient, 500));
        events.onPhase?.(strategy, 'window', s, window[window.length - 1] as number);
      }
      if (strategy === 'mirror+backfill') await waitForBackfill(forward, 60_000);
    } else if (strategy === 'proxy-shadow') {
      proxy = new Proxy({
        mode: 'shadow',
        primary: oldPool,
        secondary: newPool,
        listen: { host: '127.0.0.1', port: 0 },
      });
      const { port } = await proxy.start();
      app.switchTo(client(parsePoolSpec(`127.0.0.1:${port}`, options.hash, { name: 'proxy' }), 2));
      for (let s = 1; s <= options.windowSeconds; s++) {
        await sleep(1000);
        window.push(await wouldHitRatio(app, newClient, 500));
        events.onPhase?.(strategy, 'window', s, window[window.length - 1] as number);
      }
    } else if (strategy === 'instance-by-instance') {
      const steps = stepPools(oldPool, newPool, options.hash);
      const perStep = Math.max(1, Math.floor(options.windowSeconds / steps.length));
      for (const [i, stepPool] of steps.entries()) {
        if (i === steps.length - 1) break; // the last step is the cut-over itself
        app.switchTo(client(stepPool, 2));
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
    // Both pools are about to be written: memshift mirrors new → old too, from now to the end.
    if (mirrored && twoWay) {
      const reverse = new MirrorJob({
        ...mirrorOptions(options, true),
        routes: newPool.servers.map((s) => ({ sourcePort: s.port, target: oldPool, mapped: false })),
      });
      mirrors.push(reverse);
      await reverse.start();
    }
    const start = await wouldHitRatio(app, newClient, 1000);
    const atSwitch = { ...app.counters };
    const switching: number[] = [];
    const staleBySecond: number[] = [];
    if (options.switchMode === 'rolling') {
      // Host i moves at i/hosts of the window; the ratio is taken each second meanwhile.
      const began = Date.now();
      const windowMs = options.switchSeconds * 1000;
      let moved = 0;
      let second = began + 1000;
      mark = atSwitch;
      while (moved < hosts || Date.now() < began + windowMs) {
        const due = moved < hosts ? began + (moved * windowMs) / hosts : Infinity;
        await sleep(Math.max(0, Math.min(due, second) - Date.now()));
        if (moved < hosts && Date.now() >= due) {
          app.switchHost(moved, newHosts[moved] as PoolClient);
          moved++;
        }
        if (Date.now() >= second) {
          const now = { ...app.counters };
          switching.push(hitRatio(now, mark));
          staleBySecond.push(now.staleHits - mark.staleHits);
          mark = now;
          second += 1000;
          events.onPhase?.(
            strategy,
            'switching',
            switching.length,
            switching[switching.length - 1] as number,
          );
        }
      }
    } else {
      app.switchTo(newHosts);
    }
    const atCutOver = { ...app.counters };
    // One-way strategies stop their helpers once the application has moved.
    const proxyStopping = proxy?.stop();
    proxy = undefined;
    const after = await measure(app, options.afterSeconds, staleBySecond, (s, r) =>
      events.onPhase?.(strategy, 'after', s, r),
    );
    const atRollback = { ...app.counters };
    let rollback: RollbackResult | undefined;
    if (options.rollbackSeconds > 0) {
      const rollbackStart = await wouldHitRatio(app, oldClient, 1000);
      app.switchTo(oldHosts);
      const back = await measure(app, options.rollbackSeconds, staleBySecond, (s, r) =>
        events.onPhase?.(strategy, 'rollback', s, r),
      );
      rollback = { after: back, firstSecond: back[0] ?? 0, start: rollbackStart };
    }
    await app.stop();
    const end = { ...app.counters };
    const summaries = await Promise.all(mirrors.splice(0).map((m) => m.stop()));
    await proxyStopping;
    const bytesCopied = (summaries[0]?.backfill ?? []).reduce((n, b) => n + (b.report?.bytes ?? 0), 0);
    const conflicts = summaries.reduce(
      (n, s) => n + s.routes.reduce((m, r) => m + r.replay.peer.conflicts, 0),
      0,
    );
    const [staleOld, staleNew] = await Promise.all([app.staleValues(oldClient), app.staleValues(newClient)]);
    const recovered = after.findIndex((r) => r >= before * 0.99);
    const phase = (name: 'staleHits' | 'hits'): StaleHits => ({
      before: atSwitch[name],
      during: atCutOver[name] - atSwitch[name],
      after: atRollback[name] - atCutOver[name],
      rollback: end[name] - atRollback[name],
    });
    return {
      strategy,
      servers: servers.map((server) => server.address),
      before,
      after,
      switching,
      staleBySecond,
      window,
      start,
      firstSecond: after[0] ?? 0,
      firstMinute: hitRatio(atRollback, atCutOver),
      recoverySeconds: recovered < 0 ? undefined : recovered + 1,
      databaseReads: atRollback.databaseReads - atCutOver.databaseReads,
      bytesCopied,
      verify,
      staleHits: phase('staleHits'),
      hits: phase('hits'),
      staleValues: { old: staleOld.stale, new: staleNew.stale },
      rollback,
      conflicts,
    };
  } finally {
    await app?.stop();
    await Promise.all(mirrors.map((m) => m.stop().catch(() => undefined)));
    await proxy?.stop().catch(() => undefined);
    for (const c of clients) c.destroy();
    await Promise.all(servers.map((s) => s.stop()));
  }
}
