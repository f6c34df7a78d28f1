/**
 * repair's promise (real memcached): after it, the new pool holds no value
 * the old pool does not have, and nothing it removed was equal to the old
 * pool's or fresher than what it read; it never resurrects a key.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCopy } from '../src/jobs/copy.js';
import { runRepair, type RepairProgress } from '../src/jobs/repair.js';
import { MemcachedClient } from '../src/net/client.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';
import { audit, ketamaPool, load, PoolClients } from './support/pool-audit.js';
import { HoldingRelay } from './support/relay.js';

/** Waits (bounded) for a promise, failing with `what` when it does not come. */
async function within<T>(promise: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(what)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

describe('memshift repair (real memcached)', () => {
  const servers: MemcachedServer[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'memshift-repair-'));

  before(async () => {
    for (let i = 0; i < 5; i++) servers.push(await startMemcached({ memoryMb: 64 }));
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  const fromPool = (): ReturnType<typeof ketamaPool> =>
    ketamaPool([servers[0]!.address, servers[1]!.address]);
  const toPool = (): ReturnType<typeof ketamaPool> =>
    ketamaPool([servers[2]!.address, servers[3]!.address, servers[4]!.address]);

  it('removes stale values, other flags, keys the source lacks and longer TTLs, and nothing equal', async () => {
    const src = new PoolClients(fromPool());
    const dst = new PoolClients(toPool());
    try {
      await src.flush();
      await dst.flush();
      const keys = Array.from({ length: 6000 }, (_, i) => `eq:${i}`);
      await load(src, keys, (k) => `value of ${k}`);
      await load(dst, keys, (k) => `value of ${k}`);
      const stale = keys.filter((_, i) => i % 50 === 1);
      const flagged = keys.filter((_, i) => i % 50 === 2);
      const longer = keys.filter((_, i) => i % 50 === 3);
      for (const k of stale) await dst.owner(k).set(k, `older ${k}`, { flags: 5, exptime: 3600 });
      for (const k of flagged) await dst.owner(k).set(k, `value of ${k}`, { flags: 9, exptime: 3600 });
      for (const k of longer) await dst.owner(k).set(k, `value of ${k}`, { flags: 5, exptime: 0 });
      const extra = Array.from({ length: 150 }, (_, i) => `extra:${i}`);
      await load(dst, extra, (k) => `deleted long ago ${k}`);
      // A counter decr'd on the source keeps its width ("9  "); the target holds it written fresh ("9").
      await src.owner('counter').set('counter', '100', { flags: 0, exptime: 3600 });
      await src.owner('counter').decr('counter', 91);
      await dst.owner('counter').set('counter', '9', { flags: 0, exptime: 3600 });

      const report = await runRepair({ from: src.pool, to: dst.pool, batchKeys: 300 });
      const c = report.counts;
      assert.deepEqual(report.errors, []);
      assert.equal(report.complete, true);
      assert.equal(c.compared, keys.length + extra.length + 1);
      assert.equal(c.removedStale, stale.length + flagged.length);
      assert.equal(c.removedAbsentOnSource, extra.length);
      assert.equal(c.removedOutlivesSource, longer.length);
      assert.equal(c.changedSinceRead, 0);
      assert.equal(c.equal, keys.length - stale.length - flagged.length - longer.length + 1);
      assert.equal(report.removed, stale.length + flagged.length + longer.length + extra.length);

      const result = await audit(src, dst, [...keys, ...extra, 'counter']);
      assert.deepEqual(result.resurrected, []);
      assert.deepEqual(
        result.older.filter((k) => k !== 'counter'),
        [],
      );
      // The removed keys are misses now; every equal key is still there.
      assert.equal(result.missing, stale.length + flagged.length + longer.length);
      assert.equal((await dst.owner('counter').get('counter'))?.value.toString(), '9');
      for (const k of longer) assert.equal(await dst.owner(k).get(k), undefined);

      // A second pass finds nothing left to do.
      const again = await runRepair({ from: src.pool, to: dst.pool });
      assert.equal(again.removed, 0);
      assert.equal(again.counts.equal, again.counts.compared);
    } finally {
      await src.close();
      await dst.close();
    }
  });

  it('leaves a target without CAS (-C) alone, counts what differs there, and says it is not complete', async () => {
    const noCas = await startMemcached({ memoryMb: 16, args: ['-C'] });
    const src = new PoolClients(ketamaPool([servers[0]!.address]));
    const dst = new PoolClients(ketamaPool([noCas.address]));
    try {
      await src.flush();
      const keys = Array.from({ length: 200 }, (_, i) => `nc:${i}`);
      await load(src, keys, (k) => `v ${k}`);
      await load(dst, keys, (k) => (k.endsWith('7') ? `older ${k}` : `v ${k}`));
      const report = await runRepair({ from: src.pool, to: dst.pool });
      assert.equal(report.counts.unguarded, 20);
      assert.equal(report.removed, 0);
      assert.equal(report.complete, false);
      assert.equal((await audit(src, dst, keys)).older.length, 20);
    } finally {
      await src.close();
      await dst.close();
      await noCas.stop();
    }
  });

  describe('with writers beside it', () => {
    let relay: HoldingRelay;
    before(async () => {
      relay = await HoldingRelay.start(servers[0]!.host, servers[0]!.port);
    });
    after(async () => relay.close());

    /** 400 keys on one source and one target; every fourth one stale on the target. */
    async function plant(run: string, src: PoolClients, dst: PoolClients): Promise<string[]> {
      await dst.flush();
      const keys = Array.from({ length: 400 }, (_, i) => `${run}:${i}`);
      await load(src, keys, (k) => `v1 ${k}`);
      await load(dst, keys, (k) => (Number(k.split(':')[1]) % 4 === 0 ? `v0 ${k}` : `v1 ${k}`));
      return keys;
    }
    const isStale = (k: string): boolean => Number(k.split(':')[1]) % 4 === 0;

    it("writes and deletes that reach source and target while repair's source read is held: nothing fresher removed", async () => {
      // Repair reads the source through the relay; the writers reach both servers directly.
      const direct = new PoolClients(ketamaPool([servers[0]!.address]));
      const dst = new PoolClients(ketamaPool([servers[2]!.address]));
      const from = ketamaPool([relay.address]);
      try {
        for (let run = 0; run < 4; run++) {
          const keys = await plant(`held${run}`, direct, dst);
          const victim = keys[40 + run * 4]!;
          const held = relay.holdWhen(Buffer.from(`mg ${victim} `));
          const repair = runRepair({ from, to: dst.pool, batchKeys: 40, concurrency: 1 });
          const chunk = await within(held, `no read of ${victim} reached the relay`);
          const names = [...chunk.toString('latin1').matchAll(new RegExp(`mg (held${run}:\\d+) `, 'g'))].map(
            (m) => m[1]!,
          );
          const stale = names.filter(isStale);
          const equal = names.filter((k) => !isStale(k));
          assert.ok(stale.length >= 2 && equal.length >= 3, 'the held read carries stale and equal keys');
          const [staleRewritten, staleDeleted] = stale as [string, string];
          const [bothRewritten, lagging, bothDeleted] = equal as [string, string, string];
          const set = (c: MemcachedClient, k: string): Promise<unknown> =>
            c.set(k, `v2 ${k}`, { flags: 5, exptime: 3600 });
          // As a mirror would: the source first, then the target.
          for (const k of [staleRewritten, bothRewritten]) {
            await set(direct.owner(k), k);
            await set(dst.owner(k), k);
          }
          for (const k of [staleDeleted, bothDeleted]) {
            await direct.owner(k).delete(k);
            await dst.owner(k).delete(k);
          }
          // The mirror's write of this one is still on its way when repair compares.
          await set(direct.owner(lagging), lagging);
          relay.release();
          const report = await repair;
          await set(dst.owner(lagging), lagging);
          assert.deepEqual(report.errors, []);
          const result = await audit(direct, dst, keys);
          assert.deepEqual(result.resurrected, [], `run ${run}: resurrected`);
          assert.deepEqual(result.older, [], `run ${run}: older values`);
          // The fresher values written after repair read the target are still there.
          for (const k of [staleRewritten, bothRewritten, lagging]) {
            assert.equal((await dst.owner(k).get(k))?.value.toString(), `v2 ${k}`, `run ${run}: ${k} kept`);
          }
          assert.ok(report.counts.changedSinceRead >= 3, `run ${run}: rewritten and deleted keys left alone`);
        }
      } finally {
        await direct.close();
        await dst.close();
      }
    });

    it("writes that reach the target while repair's delete is held: the delete misses them", async () => {
      const targetRelay = await HoldingRelay.start(servers[2]!.host, servers[2]!.port);
      const src = new PoolClients(ketamaPool([servers[0]!.address]));
      const dst = new PoolClients(ketamaPool([servers[2]!.address]));
      const to = ketamaPool([targetRelay.address]);
      try {
        for (let run = 0; run < 3; run++) {
          const keys = await plant(`md${run}`, src, dst);
          const victim = keys[80 + run * 4]!;
          const held = targetRelay.holdWhen(Buffer.from(`md ${victim} `));
          const repair = runRepair({ from: src.pool, to, batchKeys: 40, concurrency: 1 });
          const chunk = await within(held, `no delete of ${victim} reached the relay`);
          const names = [...chunk.toString('latin1').matchAll(new RegExp(`md (md${run}:\\d+) `, 'g'))].map(
            (m) => m[1]!,
          );
          assert.ok(names.length >= 3, 'the held delete batch carries three stale keys or more');
          const [rewritten, deleted] = names as [string, string];
          await src.owner(rewritten).set(rewritten, 'v2', { flags: 5, exptime: 3600 });
          await dst.owner(rewritten).set(rewritten, 'v2', { flags: 5, exptime: 3600 });
          await src.owner(deleted).delete(deleted);
          await dst.owner(deleted).delete(deleted);
          targetRelay.release();
          const report = await repair;
          assert.deepEqual(report.errors, []);
          assert.equal((await dst.owner(rewritten).get(rewritten))?.value.toString(), 'v2');
          const result = await audit(src, dst, keys);
          assert.deepEqual(result.resurrected, []);
          assert.deepEqual(result.older, []);
          assert.equal(report.counts.changedSinceRead, 2, `run ${run}: EX and NF counted`);
          assert.equal(report.counts.removedStale, keys.filter(isStale).length - 2);
        }
      } finally {
        await targetRelay.close();
        await src.close();
        await dst.close();
      }
    });
  });

  it('a writer deleting and rewriting keys on source then target during three repairs: 0 resurrected, 0 older', async () => {
    const src = new PoolClients(fromPool());
    const dst = new PoolClients(toPool());
    try {
      for (let run = 0; run < 3; run++) {
        await src.flush();
        await dst.flush();
        const keys = Array.from({ length: 12_000 }, (_, i) => `w${run}:${i}`);
        await load(src, keys, (k) => `v1 ${k}`);
        await load(dst, keys, (k) => (k.endsWith('3') ? `v0 ${k}` : `v1 ${k}`));
        const gone = Array.from({ length: 500 }, (_, i) => `w${run}:gone:${i}`);
        await load(dst, gone, (k) => `v0 ${k}`);
        let stop = false;
        const writer = (async () => {
          // Bounded: at most 20 rounds of 150 writes, and it stops when the repair ends.
          for (let r = 0; r < 20 && !stop; r++) {
            for (let n = 0; n < 150; n++) {
              const k = keys[(r * 7919 + n * 104_729) % keys.length]!;
              if (n % 2 === 0) {
                await src.owner(k).delete(k);
                await dst.owner(k).delete(k);
              } else {
                await src.owner(k).set(k, `v2 ${r}`, { flags: 6, exptime: 3600 });
                await dst.owner(k).set(k, `v2 ${r}`, { flags: 6, exptime: 3600 });
              }
            }
          }
        })();
        const report = await runRepair({ from: src.pool, to: dst.pool, batchKeys: 200 }).finally(
          () => (stop = true),
        );
        await writer;
        assert.deepEqual(report.errors, []);
        const result = await audit(src, dst, [...keys, ...gone]);
        assert.deepEqual(result.resurrected, [], `run ${run}: resurrected`);
        assert.deepEqual(result.older, [], `run ${run}: older values`);
        assert.ok(report.removed >= gone.length, `run ${run}: removed ${report.removed}`);
      }
    } finally {
      await src.close();
      await dst.close();
    }
  });

  it('resumes after an interruption from a private checkpoint, without checking the done keys again', async () => {
    const src = new PoolClients(fromPool());
    const dst = new PoolClients(toPool());
    const checkpoint = join(dir, 'repair.checkpoint');
    try {
      await src.flush();
      await dst.flush();
      const keys = Array.from({ length: 20_000 }, (_, i) => `r:${i}`);
      await load(src, keys, (k) => `v1 ${k}`);
      await load(dst, keys, (k) => (k.endsWith('7') ? `v0 ${k}` : `v1 ${k}`));
      const abort = new AbortController();
      const first = await runRepair(
        { from: src.pool, to: dst.pool, batchKeys: 250, rate: 20_000, checkpoint, signal: abort.signal },
        {
          progressEveryMs: 20,
          onProgress: (p: RepairProgress) => {
            if (p.done >= 5000) abort.abort();
          },
        },
      );
      assert.equal(first.interrupted, true);
      assert.equal(first.complete, false);
      assert.ok(first.done >= 5000 && first.done < keys.length, `first run did ${first.done}`);
      assert.ok(existsSync(checkpoint));
      assert.equal(statSync(checkpoint).mode & 0o777, 0o600);
      for (let t = 0; t < 3; t++) assert.equal(statSync(`${checkpoint}.${t}.keys`).mode & 0o777, 0o600);
      const partial = await audit(src, dst, keys);
      assert.ok(partial.older.length > 0, 'some stale values are left for the resumed run');

      // A copy must not take a repair's checkpoint for its own.
      await assert.rejects(runCopy({ from: src.pool, to: dst.pool, checkpoint, resume: true }), /repair/);
      const second = await runRepair({ from: src.pool, to: dst.pool, checkpoint, resume: true });
      assert.equal(second.complete, true);
      assert.ok(second.targets.some((t) => t.resumedAt > 0));
      assert.equal(first.counts.compared + second.counts.compared, keys.length);
      assert.equal(first.counts.removedStale + second.counts.removedStale, keys.length / 10);
      const result = await audit(src, dst, keys);
      assert.deepEqual(result.older, []);
      assert.deepEqual(result.resurrected, []);
      assert.equal(result.same, keys.length - keys.length / 10);
      assert.equal(existsSync(checkpoint), false, 'a finished repair removes its checkpoint');
      await assert.rejects(
        runRepair({ from: src.pool, to: dst.pool, checkpoint, resume: true }),
        /no checkpoint to resume from/,
      );
    } finally {
      await src.close();
      await dst.close();
    }
  });
});
