import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemcachedClient } from '../src/net/client.js';
import type { Operation } from '../src/ops/operation.js';
import { Replayer } from '../src/replay/replayer.js';
import { parsePoolSpec } from '../src/topology/pool.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

function setOp(key: string, value: string): Operation {
  return {
    command: 'set',
    key: Buffer.from(key),
    value: Buffer.from(value),
    flags: 0,
    exptime: 0,
    delta: undefined,
    number: undefined,
    outcome: 'stored',
    protocol: 'text',
    connection: 1,
    timestampMicros: Date.now() * 1000,
    name: undefined,
  };
}

function single(server: MemcachedServer): ReturnType<typeof parsePoolSpec> {
  return parsePoolSpec(server.address, 'libmemcached-ketama', { name: 'new' });
}

/** Waits (bounded) for a condition that the replayer reaches on its own. */
async function until(what: string, condition: () => boolean, limitMs = 20_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const KEYS = 1000;
const QUEUE = 200;

describe('Replayer when the target is slow or down', () => {
  it('keeps accepting while the target is stopped, then deletes every key it had to drop', async () => {
    const target = await startMemcached();
    const client = new MemcachedClient(target.address);
    const replayer = new Replayer({
      target: single(target),
      connectionsPerServer: 1,
      maxQueuedPerServer: QUEUE,
    });
    try {
      // Stale values the source no longer has: each must end up replaced or deleted.
      for (let i = 0; i < KEYS; i++) await client.set(`stop:${i}`, 'stale');
      replayer.apply(setOp('stop:warmup', 'x'));
      assert.equal(await replayer.drain(10_000), true);
      target.process.kill('SIGSTOP');
      for (let i = 0; i < KEYS; i++) replayer.apply(setOp(`stop:${i}`, `fresh-${i}`));
      const during = replayer.counters;
      assert.equal(during.seen, KEYS + 1);
      assert.ok(during.dropped >= KEYS - QUEUE, `dropped ${during.dropped}`);
      assert.equal(during.remembered, during.dropped);
      target.process.kill('SIGCONT');
      assert.equal(await replayer.drain(20_000), true, JSON.stringify(replayer.status()));
      const c = replayer.counters;
      assert.equal(c.invalidated, c.dropped);
      assert.equal(c.unrecoverable, 0);
      assert.equal(c.applied + c.dropped, KEYS + 1);
      let fresh = 0;
      for (let i = 0; i < KEYS; i++) {
        const item = await client.get(`stop:${i}`);
        assert.notEqual(item?.value.toString(), 'stale', `stop:${i}`);
        if (item) {
          assert.equal(item.value.toString(), `fresh-${i}`);
          fresh++;
        }
      }
      assert.equal(fresh, c.applied - 1);
    } finally {
      target.process.kill('SIGCONT');
      await replayer.close();
      await client.close();
      await target.stop();
    }
  });

  it('counts what it cannot remember as unrecoverable when the memory cap is small', async () => {
    const target = await startMemcached();
    const replayer = new Replayer({
      target: single(target),
      connectionsPerServer: 1,
      maxQueuedPerServer: QUEUE,
      maxRememberedKeys: 10,
    });
    try {
      replayer.apply(setOp('cap:warmup', 'x'));
      assert.equal(await replayer.drain(10_000), true);
      target.process.kill('SIGSTOP');
      for (let i = 0; i < KEYS; i++) replayer.apply(setOp(`cap:${i}`, 'v'));
      const c = replayer.counters;
      assert.equal(c.remembered, 10);
      assert.equal(c.unrecoverable, c.dropped - 10);
      target.process.kill('SIGCONT');
      assert.equal(await replayer.drain(20_000), true);
      assert.equal(replayer.counters.invalidated, 10);
      assert.equal(replayer.status().servers[0]?.remembered, 0);
    } finally {
      target.process.kill('SIGCONT');
      await replayer.close();
      await target.stop();
    }
  });

  it('survives the target being killed and restarted on the same port: deletes first, then replays', async () => {
    let target = await startMemcached();
    const port = target.port;
    const replayer = new Replayer({
      target: single(target),
      connectionsPerServer: 2,
      backoffInitialMs: 20,
      backoffMaxMs: 200,
    });
    try {
      replayer.apply(setOp('kill:warmup', 'x'));
      assert.equal(await replayer.drain(10_000), true);
      target.process.kill('SIGKILL');
      await new Promise((resolve) => target.process.once('exit', resolve));
      await until('the replayer to see the target gone', () => replayer.status().servers[0]!.connected === 0);
      for (let i = 0; i < 100; i++) replayer.apply(setOp(`kill:${i}`, 'while down'));
      const down = replayer.counters;
      assert.equal(down.dropped, 100);
      assert.equal(down.remembered, 100);

      target = await startMemcached({ port });
      await until('the remembered keys to be deleted', () => replayer.counters.invalidated === 100);
      // Writes after the restart land after the deletes of the same keys.
      for (let i = 0; i < 10; i++) replayer.apply(setOp(`kill:${i}`, 'after restart'));
      assert.equal(await replayer.drain(10_000), true);
      const client = new MemcachedClient(target.address);
      const stats = await client.stats();
      // Every remembered key was deleted on the restarted server (which had none of them).
      assert.equal(Number(stats.get('delete_misses')), 100);
      for (let i = 0; i < 100; i++) {
        assert.equal((await client.get(`kill:${i}`))?.value.toString(), i < 10 ? 'after restart' : undefined);
      }
      await client.close();
      assert.equal(replayer.counters.applied, 11);
      assert.ok(replayer.status().servers[0]!.disconnects >= 1);
    } finally {
      await replayer.close();
      await target.stop();
    }
  });
});
