/**
 * A mirror under test: a real source memcached, a real target pool, memshift's
 * MirrorJob capturing on lo with real tcpdump, and checks that every key
 * mutated while mirroring holds on its target server what it holds on the
 * source.
 */
import assert from 'node:assert/strict';
import { MirrorJob, type MirrorOptions, type MirrorSummary } from '../../src/jobs/mirror.js';
import { MemcachedClient } from '../../src/net/client.js';
import { PoolClient } from '../../src/net/pool-client.js';
import { parsePoolSpec, type Pool } from '../../src/topology/pool.js';
import { startMemcached, type MemcachedServer } from './memcached.js';

export interface MirrorRig {
  /** The first source server; `sources` holds them all (one route each, into the same new pool). */
  readonly source: MemcachedServer;
  readonly sources: MemcachedServer[];
  readonly targets: MemcachedServer[];
  readonly pool: Pool;
  readonly sourceClient: MemcachedClient;
  readonly targetClient: PoolClient;
  readonly job: MirrorJob;
  /** Stops the mirror (draining), and returns its summary. */
  finish(): Promise<MirrorSummary>;
  close(): Promise<void>;
}

export interface RigOptions {
  /** Source servers (default 1), each mirrored by its own route into the one new pool. */
  readonly sources?: number;
  readonly targets?: number;
  readonly hash?: string;
  readonly host?: string;
  readonly sourceArgs?: string[];
  /** memcached arguments of each target server, by position (default `-I 2m`). */
  readonly targetArgs?: string[][];
  readonly maxValueBytes?: number;
  readonly mapped?: boolean;
  readonly replay?: Partial<MirrorOptions['replay']>;
  readonly backfill?: MirrorOptions['backfill'];
  /** Runs after the source started and before capture starts (connections opened before capture). */
  readonly beforeCapture?: (source: MemcachedServer, sources: MemcachedServer[]) => Promise<void>;
}

export async function mirrorRig(options: RigOptions = {}): Promise<MirrorRig> {
  const host = options.host ?? '127.0.0.1';
  const sources: MemcachedServer[] = [];
  for (let i = 0; i < (options.sources ?? 1); i++)
    sources.push(await startMemcached({ host, args: options.sourceArgs ?? ['-I', '2m'] }));
  const source = sources[0]!;
  const targets: MemcachedServer[] = [];
  for (let i = 0; i < (options.targets ?? 3); i++)
    targets.push(await startMemcached({ host, args: options.targetArgs?.[i] ?? ['-I', '2m'] }));
  const pool = parsePoolSpec(targets.map((t) => t.address).join(','), options.hash ?? 'libmemcached-ketama', {
    name: 'new',
  });
  await options.beforeCapture?.(source, sources);
  const job = new MirrorJob({
    routes: sources.map((s) => ({ sourcePort: s.port, target: pool, mapped: options.mapped ?? false })),
    sourceHost: host,
    interface: 'lo',
    excludeClients: [],
    drainMs: 10_000,
    backfill: options.backfill,
    maxValueBytes: options.maxValueBytes,
    replay: {
      fill: true,
      fillWindowMs: 60_000,
      fillRatePerSecond: 100_000,
      includeReads: false,
      flush: 'skip',
      maxQueuedPerServer: 200_000,
      maxRememberedKeys: 200_000,
      ...options.replay,
    },
  });
  await job.start();
  const sourceClient = new MemcachedClient(source.address);
  const targetClient = new PoolClient(pool);
  let summary: MirrorSummary | undefined;
  return {
    source,
    sources,
    targets,
    pool,
    sourceClient,
    targetClient,
    job,
    async finish() {
      summary ??= await job.stop();
      return summary;
    },
    async close() {
      await job.stop().catch(() => undefined);
      sourceClient.destroy();
      targetClient.destroy();
      await Promise.all([...sources, ...targets].map((s) => s.stop()));
    },
  };
}

/**
 * Every key holds the same value and flags on its target server as on the
 * source (or is absent on both), and the target's TTL is never longer and at most 4 s shorter. Returns how many
 * keys were present on the source.
 */
export async function assertMirrored(
  rig: MirrorRig,
  keys: Iterable<Buffer | string>,
  /** Seconds the target's TTL may exceed the source's (only for writers that round up, like copy). */
  longerBy = 0,
): Promise<number> {
  let present = 0;
  for (const key of keys) {
    const name = typeof key === 'string' ? key : key.toString('latin1');
    const [src, dst] = await Promise.all([
      rig.sourceClient.mg(key, ['v', 'f', 't']),
      rig.targetClient.clientFor(key).mg(key, ['v', 'f', 't']),
    ]);
    if (src.code !== 'VA') {
      assert.notEqual(dst.code, 'VA', `${name}: absent on the source but present on the target`);
      continue;
    }
    present++;
    assert.equal(dst.code, 'VA', `${name}: present on the source but missing on the target`);
    assert.ok(dst.value?.equals(src.value ?? Buffer.alloc(0)), `${name}: values differ`);
    const flag = (flags: string[], f: string): number => Number(flags.find((t) => t.startsWith(f))?.slice(1));
    assert.equal(flag(dst.flags, 'f'), flag(src.flags, 'f'), `${name}: flags differ`);
    const ttlSource = flag(src.flags, 't');
    const ttlTarget = flag(dst.flags, 't');
    if (ttlSource === -1)
      assert.equal(ttlTarget, -1, `${name}: no expiry on the source, ${ttlTarget} s on the target`);
    else
      // Never longer on the target; shorter by the replay's clock margin and the copy's rounding.
      assert.ok(
        ttlTarget <= ttlSource + longerBy && ttlSource - ttlTarget <= 4,
        `${name}: TTL ${ttlSource} on the source, ${ttlTarget} on the target`,
      );
  }
  return present;
}

/** Waits (bounded) until capture has seen at least `requests` requests, so stopping loses nothing in flight. */
export async function waitForRequests(job: MirrorJob, requests: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (job.summary().operations.requests < requests && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
