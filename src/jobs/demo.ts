/**
 * `memshift demo`: a whole migration on this machine. An old pool (2 memcached
 * instances) serves an application; a new pool of a different shape (3
 * instances) starts empty; memshift mirrors the old instances' live traffic
 * into the new pool, and the demo shows, second by second, the hit ratio the
 * application would get if it switched to the new pool now.
 */
import { parsePoolSpec, type Pool } from '../topology/pool.js';
import { PoolClient } from '../net/pool-client.js';
import { startMemcached, type MemcachedServer } from './local-memcached.js';
import { MirrorJob, type MirrorSummary } from './mirror.js';
import { Application, DEFAULT_WORKLOAD, wouldHitRatio, type WorkloadOptions } from './workload.js';

export interface DemoOptions {
  readonly oldServers: number;
  readonly newServers: number;
  /** The application's client hashing, used for both pools. */
  readonly hash: string;
  /** Seconds the application runs on the old pool before mirroring starts. */
  readonly warmupSeconds: number;
  /** Seconds of mirroring. */
  readonly mirrorSeconds: number;
  readonly workload: WorkloadOptions;
  /** Keys sampled each second to measure the new pool's would-be hit ratio. */
  readonly probeSamples: number;
  /** Capture interface (loopback: the demo's servers listen there). */
  readonly interface: string;
}

export const DEFAULT_DEMO: DemoOptions = Object.freeze({
  oldServers: 2,
  newServers: 3,
  hash: 'libmemcached-ketama',
  warmupSeconds: 5,
  mirrorSeconds: 20,
  workload: DEFAULT_WORKLOAD,
  probeSamples: 1000,
  interface: 'lo',
});

export interface DemoSample {
  readonly second: number;
  readonly phase: 'warm-up' | 'mirror';
  /** Hit ratio the application saw on the old pool during this second. */
  readonly oldHitRatio: number | undefined;
  /** Hit ratio it would get from the new pool now (undefined before mirroring). */
  readonly newWouldHit: number | undefined;
  readonly requests: number;
  readonly mirroredApplied: number;
}

export interface DemoReport {
  readonly oldPool: string[];
  readonly newPool: string[];
  readonly samples: DemoSample[];
  readonly mirror: MirrorSummary | undefined;
  readonly application: Application['counters'];
}

/** Runs the demo; `onSample` sees each second as it ends. Every process started is stopped. */
export async function runDemo(
  options: DemoOptions = DEFAULT_DEMO,
  onSample: (sample: DemoSample) => void = () => {},
): Promise<DemoReport> {
  const servers: MemcachedServer[] = [];
  let oldClient: PoolClient | undefined;
  let newClient: PoolClient | undefined;
  let mirror: MirrorJob | undefined;
  try {
    for (let i = 0; i < options.oldServers + options.newServers; i++) servers.push(await startMemcached());
    const oldPool = poolOf('old', servers.slice(0, options.oldServers), options.hash);
    const newPool = poolOf('new', servers.slice(options.oldServers), options.hash);
    oldClient = new PoolClient(oldPool);
    newClient = new PoolClient(newPool);
    const app = new Application(oldClient, options.workload);
    const samples: DemoSample[] = [];
    let second = 0;
    let last = { ...app.counters };
    let lastApplied = 0;
    const tick = async (phase: DemoSample['phase']): Promise<void> => {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      second++;
      const now = { ...app.counters };
      const reads = now.reads - last.reads;
      const applied = mirror ? mirror.summary().routes.reduce((n, r) => n + r.replay.applied, 0) : 0;
      const sample: DemoSample = {
        second,
        phase,
        oldHitRatio: reads > 0 ? (now.hits - last.hits) / reads : undefined,
        newWouldHit:
          phase === 'mirror' && newClient
            ? await wouldHitRatio(app, newClient, options.probeSamples)
            : undefined,
        requests: now.reads + now.writes + now.deletes - (last.reads + last.writes + last.deletes),
        mirroredApplied: applied - lastApplied,
      };
      last = now;
      lastApplied = applied;
      samples.push(sample);
      onSample(sample);
    };

    app.start();
    for (let i = 0; i < options.warmupSeconds; i++) await tick('warm-up');
    mirror = new MirrorJob({
      routes: oldPool.servers.map((server) => ({ sourcePort: server.port, target: newPool, mapped: false })),
      sourceHost: '127.0.0.1',
      interface: options.interface,
      excludeClients: [],
      drainMs: 5000,
      replay: {
        fill: true,
        fillWindowMs: 60_000,
        fillRatePerSecond: 5000,
        includeReads: false,
        flush: 'skip',
        maxQueuedPerServer: 100_000,
        maxRememberedKeys: 100_000,
      },
    });
    await mirror.start();
    for (let i = 0; i < options.mirrorSeconds; i++) await tick('mirror');
    await app.stop();
    const summary = await mirror.stop();
    return {
      oldPool: oldPool.servers.map((s) => s.address),
      newPool: newPool.servers.map((s) => s.address),
      samples,
      mirror: summary,
      application: { ...app.counters },
    };
  } finally {
    await mirror?.stop().catch(() => undefined);
    oldClient?.destroy();
    newClient?.destroy();
    await Promise.all(servers.map((s) => s.stop()));
  }
}

function poolOf(name: string, servers: MemcachedServer[], hash: string): Pool {
  return parsePoolSpec(servers.map((s) => s.address).join(','), hash, { name, where: `demo ${name} pool` });
}
