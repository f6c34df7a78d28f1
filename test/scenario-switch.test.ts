/**
 * The switch in the migration scenario: stale hits are counted against the
 * application's database, and on a small configuration the rolling switch
 * with memshift's two-way mirror leaves no stale value in either pool, nor
 * does the rollback in the old pool; big bang shows what the alternative costs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_SCENARIO, runScenario, type StrategyResult } from '../src/jobs/scenario.js';
import { Application, DEFAULT_WORKLOAD } from '../src/jobs/workload.js';
import { PoolClient } from '../src/net/pool-client.js';
import { parsePoolSpec } from '../src/topology/pool.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';
import { processesOn } from './support/processes.js';

describe('stale hits, measured', () => {
  let server: MemcachedServer;
  let pool: PoolClient;

  before(async () => {
    server = await startMemcached();
    pool = new PoolClient(parsePoolSpec(server.address, 'modula', { name: 'cache' }));
  });
  after(async () => {
    pool.destroy();
    await server.stop();
  });

  it('counts a planted stale value on a hit, and in the key-by-key check of the pool', async () => {
    const app = new Application(pool, { ...DEFAULT_WORKLOAD, keys: 10 });
    for (const rank of [3, 4]) {
      await pool.clientFor(app.keyOf(rank)).set(app.keyOf(rank), app.valueOf(rank));
    }
    // The database moves on behind the cache's back: the cached value of key 3 is now stale.
    app.advanceVersion(3);
    assert.equal(await app.read(4), 'hit');
    assert.equal(app.counters.staleHits, 0);
    assert.equal(await app.read(3), 'stale');
    assert.equal(app.counters.staleHits, 1);
    assert.equal(app.counters.hits, 2);
    assert.deepEqual(await app.staleValues(pool), { present: 2, stale: 1 });
    // A miss reads the database and stores its current value: no longer stale.
    await pool.clientFor(app.keyOf(3)).delete(app.keyOf(3));
    assert.equal(await app.read(3), 'miss');
    assert.equal(await app.read(3), 'hit');
    assert.deepEqual(await app.staleValues(pool), { present: 2, stale: 0 });
  });
});

describe('rolling switch and rollback (small scenario, real memcached and tcpdump)', () => {
  it('two-way mirroring leaves no stale value in either pool; big bang does', async () => {
    const report = await runScenario({
      ...DEFAULT_SCENARIO,
      strategies: ['big-bang', 'mirror+backfill'],
      hosts: 6,
      switchMode: 'rolling',
      switchSeconds: 3,
      rollbackSeconds: 2,
      warmupSeconds: 2,
      windowSeconds: 2,
      afterSeconds: 2,
      workload: { ...DEFAULT_SCENARIO.workload, keys: 2000, rate: 1000 },
    });
    const by = new Map(report.results.map((r): [string, StrategyResult] => [r.strategy, r]));
    const bigBang = by.get('big-bang')!;
    const mirrored = by.get('mirror+backfill')!;
    const show = (r: StrategyResult): string =>
      JSON.stringify({ staleHits: r.staleHits, staleValues: r.staleValues, conflicts: r.conflicts });
    assert.equal(mirrored.switching.length, 3);
    assert.deepEqual(mirrored.staleValues, { old: 0, new: 0 }, show(mirrored));
    assert.ok(mirrored.staleHits.during <= bigBang.staleHits.during, `${show(mirrored)} vs ${show(bigBang)}`);
    // Without a way back, the old pool kept what the switched hosts changed on the new one.
    assert.ok(bigBang.staleValues.old > 0, show(bigBang));
    assert.ok(mirrored.rollback !== undefined && mirrored.rollback.after.length === 2);
    assert.ok(
      mirrored.rollback.start > bigBang.rollback!.start * 0.9,
      `the old pool stayed warm: ${mirrored.rollback.start}`,
    );
    // Every memcached and tcpdump the scenario started is gone.
    const ports = report.results.flatMap((r) => r.servers.map((a) => a.split(':').pop() ?? ''));
    assert.equal(ports.length, 2 * 5);
    assert.deepEqual(processesOn(ports), []);
  });
});
