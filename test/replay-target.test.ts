import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MemcachedClient } from '../src/net/client.js';
import type { OpCommand, OpOutcome, Operation } from '../src/ops/operation.js';
import { inSample, keyHash } from '../src/replay/key-hash.js';
import { Replayer, type ReplayerOptions } from '../src/replay/replayer.js';
import { parsePoolSpec, type Pool } from '../src/topology/pool.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

export function op(
  command: OpCommand,
  key: string,
  outcome: OpOutcome,
  extra: Partial<Operation> = {},
): Operation {
  return {
    command,
    key: Buffer.from(key),
    value: undefined,
    flags: undefined,
    exptime: undefined,
    delta: undefined,
    number: undefined,
    outcome,
    protocol: 'text',
    connection: 1,
    timestampMicros: Date.now() * 1000,
    name: undefined,
    ...extra,
  };
}

function setOp(key: string, value: string, extra: Partial<Operation> = {}): Operation {
  return op('set', key, 'stored', { value: Buffer.from(value), flags: 0, exptime: 0, ...extra });
}

/** Remaining TTL (-1: never), flags and value as the server holds them, or undefined. */
async function inspect(
  client: MemcachedClient,
  key: string,
): Promise<{ ttl: number; flags: number; value: string } | undefined> {
  const reply = await client.mg(key, ['t', 'f', 'v']);
  if (reply.code !== 'VA') return undefined;
  const token = (c: string): number => Number(reply.flags.find((f) => f.startsWith(c))?.slice(1));
  return { ttl: token('t'), flags: token('f'), value: reply.value?.toString() ?? '' };
}

async function value(client: MemcachedClient, key: string): Promise<string | undefined> {
  return (await client.get(key))?.value.toString();
}

function poolOf(servers: MemcachedServer[], hash = 'libmemcached-ketama'): Pool {
  return parsePoolSpec(servers.map((s) => s.address).join(','), hash, { name: 'new' });
}

async function settle(replayer: Replayer): Promise<void> {
  assert.equal(await replayer.drain(20_000), true, JSON.stringify(replayer.status()));
}

describe('Replayer against real memcached', () => {
  let target: MemcachedServer;
  let client: MemcachedClient;
  let replayer: Replayer;
  const warnings: string[] = [];

  before(async () => {
    target = await startMemcached();
    client = new MemcachedClient(target.address);
    replayer = new Replayer({ target: poolOf([target]), onWarning: (m) => warnings.push(m) });
  });
  after(async () => {
    await replayer.close();
    await client.close();
    await target.stop();
  });

  it('stores values, flags and TTLs as the source did (relative and absolute exptime)', async () => {
    const unix = Math.floor(Date.now() / 1000) + 500;
    replayer.apply(setOp('o:set', 'alpha', { flags: 42, exptime: 100 }));
    replayer.apply(setOp('o:abs', 'beta', { exptime: unix }));
    replayer.apply(setOp('o:never', 'gamma', { flags: 7 }));
    replayer.apply(op('add', 'o:add', 'stored', { value: Buffer.from('added'), flags: 1, exptime: 50 }));
    replayer.apply(op('cas', 'o:cas', 'stored', { value: Buffer.from('cas won'), flags: 2, exptime: 0 }));
    await settle(replayer);
    const set = await inspect(client, 'o:set');
    assert.equal(set?.value, 'alpha');
    // Relative TTLs count down from the capture time, less two seconds for the servers' coarse clocks.
    assert.equal(set?.flags, 42);
    assert.ok(set.ttl >= 95 && set.ttl <= 98, `ttl ${set.ttl}`);
    const abs = await inspect(client, 'o:abs');
    assert.equal(abs?.value, 'beta');
    assert.ok(abs.ttl >= 498 && abs.ttl <= 501, `ttl ${abs.ttl}`);
    assert.deepEqual(await inspect(client, 'o:never'), { ttl: -1, flags: 7, value: 'gamma' });
    assert.equal((await inspect(client, 'o:add'))?.value, 'added');
    assert.equal((await inspect(client, 'o:cas'))?.value, 'cas won');
    assert.ok(replayer.counters.applied >= 5);
  });

  it('does not apply what the source refused, and deletes what the source does not hold', async () => {
    for (const k of ['r:add', 'r:cas', 'r:replace', 'r:unknown', 'r:append', 'r:delete']) {
      await client.set(k, 'target-old');
    }
    const before = replayer.counters;
    replayer.apply(op('add', 'r:add', 'not_stored', { value: Buffer.from('new') }));
    replayer.apply(op('cas', 'r:cas', 'exists', { value: Buffer.from('new') }));
    replayer.apply(op('replace', 'r:replace', 'not_stored', { value: Buffer.from('new') }));
    replayer.apply(op('add', 'r:unknown', 'unknown', { value: Buffer.from('new') }));
    replayer.apply(op('append', 'r:append', 'not_stored', { value: Buffer.from('+') }));
    replayer.apply(op('delete', 'r:delete', 'deleted'));
    await settle(replayer);
    assert.equal(await value(client, 'r:add'), 'target-old');
    assert.equal(await value(client, 'r:cas'), 'target-old');
    assert.equal(await value(client, 'r:replace'), undefined);
    assert.equal(await value(client, 'r:unknown'), undefined);
    assert.equal(await value(client, 'r:append'), undefined);
    assert.equal(await value(client, 'r:delete'), undefined);
    const after = replayer.counters;
    assert.equal((after.skipped.not_stored ?? 0) - (before.skipped.not_stored ?? 0), 1);
    assert.equal((after.skipped.exists ?? 0) - (before.skipped.exists ?? 0), 1);
  });

  it('appends, prepends and touches like the source', async () => {
    await client.set('a:text', 'mid', { exptime: 0 });
    replayer.apply(op('append', 'a:text', 'stored', { value: Buffer.from('>') }));
    replayer.apply(op('prepend', 'a:text', 'stored', { value: Buffer.from('<') }));
    replayer.apply(op('touch', 'a:text', 'touched', { exptime: 300 }));
    await settle(replayer);
    const item = await inspect(client, 'a:text');
    assert.equal(item?.value, '<mid>');
    assert.ok(item.ttl >= 295 && item.ttl <= 298, `ttl ${item.ttl}`);
  });

  it('repeats incr/decr, and deletes the key when the target answers otherwise than the source', async () => {
    await client.set('n:same', '5');
    await client.set('n:diverged', '10');
    await client.set('n:down', '9');
    replayer.apply(op('incr', 'n:same', 'number', { delta: 1n, number: 6n }));
    replayer.apply(op('incr', 'n:diverged', 'number', { delta: 1n, number: 6n }));
    replayer.apply(op('decr', 'n:down', 'number', { delta: 4n, number: 5n }));
    await settle(replayer);
    assert.equal(await value(client, 'n:same'), '6');
    assert.equal(await value(client, 'n:diverged'), undefined);
    assert.equal(await value(client, 'n:down'), '5');
    assert.equal(replayer.counters.diverged, 1);
  });

  it('skips flush_all on an unmapped target, with a counter and a warning', async () => {
    await client.set('f:kept', 'x');
    replayer.apply(op('flush_all', '', 'ok', { key: Buffer.alloc(0) }));
    await settle(replayer);
    assert.equal(await value(client, 'f:kept'), 'x');
    assert.equal(replayer.counters.skipped.flush_unmapped, 1);
    assert.ok(warnings.some((w) => w.includes('flush_all')));
  });

  it('counts errors from the target as failed and deletes the key once it can', async () => {
    await client.set('e:big', 'old');
    // Over the target's 1 MiB item size: the target refuses it, so the old value must go.
    replayer.apply(setOp('e:big', 'x'.repeat(1024 * 1024 + 10)));
    await settle(replayer);
    assert.equal(replayer.counters.failed, 1);
    assert.equal(await value(client, 'e:big'), undefined);

    // A key the target refuses outright: its delete is refused too, so it is reported, not retried forever.
    replayer.apply(setOp('e:' + 'k'.repeat(300), 'v'));
    await settle(replayer);
    assert.equal(replayer.counters.failed, 3);
    assert.equal(replayer.counters.unrecoverable, 1);
  });
});

describe('Replayer flush policies and routing over a 3-server pool', () => {
  let servers: MemcachedServer[];
  let clients: MemcachedClient[];

  before(async () => {
    servers = [await startMemcached(), await startMemcached(), await startMemcached()];
    clients = servers.map((s) => new MemcachedClient(s.address));
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('puts each key on the server the pool distribution picks, and nowhere else', async () => {
    const pool = poolOf(servers);
    const replayer = new Replayer({ target: pool });
    const keys = Array.from({ length: 300 }, (_, i) => `route:${i}`);
    for (const k of keys) replayer.apply(setOp(k, `v-${k}`));
    await settle(replayer);
    const perServer = [0, 0, 0];
    for (const k of keys) {
      const owner = pool.distribution.serverFor(Buffer.from(k));
      perServer[owner]!++;
      for (let i = 0; i < 3; i++) {
        assert.equal(await value(clients[i]!, k), i === owner ? `v-${k}` : undefined, `${k} on server ${i}`);
      }
    }
    assert.ok(
      perServer.every((n) => n > 30),
      `spread ${perServer.join('/')}`,
    );
    await replayer.close();
  });

  it('repeats flush_all where mapped 1:1 and on every server with all-targets', async () => {
    const mapped = new Replayer({ target: poolOf([servers[0]!]), mapped: true });
    await clients[0]!.set('fl:a', 'x');
    await clients[1]!.set('fl:b', 'x');
    mapped.apply(op('flush_all', '', 'ok', { key: Buffer.alloc(0) }));
    await settle(mapped);
    assert.equal(await value(clients[0]!, 'fl:a'), undefined);
    assert.equal(await value(clients[1]!, 'fl:b'), 'x');
    await mapped.close();

    const all = new Replayer({ target: poolOf(servers), flush: 'all-targets' });
    for (const c of clients) await c.set('fl:c', 'x');
    all.apply(op('flush_all', '', 'ok', { key: Buffer.alloc(0) }));
    await settle(all);
    for (const c of clients) assert.equal(await value(c, 'fl:c'), undefined);
    assert.equal(all.counters.applied, 1);
    await all.close();
  });

  it('keeps per-key order under heavy pipelining (50,000 set/delete/append on 100 keys)', async () => {
    const pool = poolOf(servers);
    const replayer = new Replayer({ target: pool, maxQueuedPerServer: 200_000, connectionsPerServer: 3 });
    // The source's state, to give every operation the outcome the source would have answered.
    const model = new Map<string, string>();
    let seed = 12345;
    const random = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 0x100000000;
    };
    for (let i = 0; i < 50_000; i++) {
      const key = `ord:${Math.floor(random() * 100)}`;
      const r = random();
      if (r < 0.4) {
        model.set(key, `s${i}`);
        replayer.apply(setOp(key, `s${i}`));
      } else if (r < 0.6) {
        model.delete(key);
        replayer.apply(op('delete', key, 'deleted'));
      } else {
        const current = model.get(key);
        if (current !== undefined) model.set(key, current + `+${i % 10}`);
        replayer.apply(
          op('append', key, current === undefined ? 'not_stored' : 'stored', {
            value: Buffer.from(`+${i % 10}`),
          }),
        );
      }
      if (i % 5000 === 4999) await new Promise((resolve) => setImmediate(resolve));
    }
    await settle(replayer);
    for (let k = 0; k < 100; k++) {
      const key = `ord:${k}`;
      const owner = clients[pool.distribution.serverFor(Buffer.from(key))]!;
      assert.equal(await value(owner, key), model.get(key), key);
    }
    const c = replayer.counters;
    assert.equal(c.seen, 50_000);
    assert.equal(c.applied, 50_000);
    assert.equal(c.dropped, 0);
    assert.equal(c.failed, 0);
    assert.ok(c.lag.p99 > 0);
    await replayer.close();
  });

  it('samples keys by hash and replays reads when asked', async () => {
    const pool = poolOf([servers[2]!]);
    const replayer = new Replayer({ target: pool, sample: 0.1 });
    const keys = Array.from({ length: 1000 }, (_, i) => `sample:${i}`);
    for (const k of keys) replayer.apply(setOp(k, 'v'));
    await settle(replayer);
    const expected = keys.filter((k) => inSample(keyHash(Buffer.from(k)), 0.1));
    assert.ok(expected.length > 50 && expected.length < 150, `${expected.length}`);
    const present = [];
    for (const k of keys) if ((await value(clients[2]!, k)) !== undefined) present.push(k);
    assert.deepEqual(present, expected);
    assert.equal(replayer.counters.applied, expected.length);
    assert.equal(replayer.counters.skipped.sampled_out, 1000 - expected.length);
    await replayer.close();

    const reads = new Replayer({ target: pool, includeReads: true });
    const getsBefore = Number((await clients[2]!.stats()).get('cmd_get'));
    for (let i = 0; i < 200; i++) reads.apply(op('get', `sample:${i}`, 'miss'));
    await settle(reads);
    const getsAfter = Number((await clients[2]!.stats()).get('cmd_get'));
    // The stats request itself reads nothing; each replayed read is one get on the target.
    assert.equal(getsAfter - getsBefore, 200);
    assert.equal(reads.counters.applied, 200);
    await reads.close();
  });
});

describe('Replayer fill on read', () => {
  let source: MemcachedServer;
  let target: MemcachedServer;
  let sourceClient: MemcachedClient;
  let targetClient: MemcachedClient;

  before(async () => {
    source = await startMemcached();
    target = await startMemcached();
    sourceClient = new MemcachedClient(source.address);
    targetClient = new MemcachedClient(target.address);
  });
  after(async () => {
    await sourceClient.close();
    await targetClient.close();
    await source.stop();
    await target.stop();
  });

  function filler(extra: Partial<ReplayerOptions> = {}): Replayer {
    return new Replayer({ target: poolOf([target]), source: source.address, fill: true, ...extra });
  }

  function hit(key: string, v: string, flags = 0): Operation {
    return op('get', key, 'hit', { value: Buffer.from(v), flags });
  }

  it("fills a hit with the source's remaining TTL, once per window, in add mode", async () => {
    const replayer = filler();
    await sourceClient.set('fill:a', 'A', { flags: 9, exptime: 200 });
    await sourceClient.set('fill:forever', 'F');
    await targetClient.set('fill:there', 'target value');
    await sourceClient.set('fill:there', 'source value', { exptime: 100 });
    replayer.apply(hit('fill:a', 'A', 9));
    replayer.apply(hit('fill:a', 'A', 9));
    replayer.apply(hit('fill:forever', 'F'));
    replayer.apply(hit('fill:there', 'source value'));
    replayer.apply(hit('fill:gone', 'G'));
    await settle(replayer);
    const a = await inspect(targetClient, 'fill:a');
    assert.equal(a?.value, 'A');
    assert.equal(a?.flags, 9);
    assert.ok(a.ttl >= 195 && a.ttl <= 198, `ttl ${a.ttl}`);
    assert.equal((await inspect(targetClient, 'fill:forever'))?.ttl, -1);
    assert.equal(await value(targetClient, 'fill:there'), 'target value');
    assert.equal(await value(targetClient, 'fill:gone'), undefined);
    const f = replayer.counters.fills;
    assert.equal(f.applied, 2);
    assert.equal(f.skippedBy.window, 1);
    assert.equal(f.skippedBy.exists, 1);
    assert.equal(f.skippedBy.gone, 1);
    assert.equal(f.attempted, 5);
    assert.ok(replayer.ownClientPorts().length === 1);
    await replayer.close();
  });

  it('never fills after a later mutation: a newer value stays, a deleted key stays absent', async () => {
    const replayer = filler();
    await sourceClient.set('late:set', 'old', { exptime: 100 });
    await sourceClient.set('late:del', 'old', { exptime: 100 });
    // The lookup on the source answers after these operations were applied.
    replayer.apply(hit('late:set', 'old'));
    replayer.apply(setOp('late:set', 'new'));
    replayer.apply(hit('late:del', 'old'));
    replayer.apply(op('delete', 'late:del', 'deleted'));
    await settle(replayer);
    assert.equal(await value(targetClient, 'late:set'), 'new');
    assert.equal(await value(targetClient, 'late:del'), undefined);
    assert.equal(replayer.counters.fills.skippedBy.mutated, 2);
    assert.equal(replayer.counters.fills.applied, 0);
    await replayer.close();
  });

  it('bounds fill lookups by rate, and can be turned off', async () => {
    const replayer = filler({ fillRatePerSecond: 0.001 });
    for (let i = 0; i < 5; i++) await sourceClient.set(`rate:${i}`, 'v', { exptime: 100 });
    for (let i = 0; i < 5; i++) replayer.apply(hit(`rate:${i}`, 'v'));
    await settle(replayer);
    assert.equal(replayer.counters.fills.applied, 1);
    assert.equal(replayer.counters.fills.skippedBy.rate, 4);
    await replayer.close();

    const off = filler({ fill: false });
    await sourceClient.set('off:a', 'v');
    off.apply(hit('off:a', 'v'));
    await settle(off);
    assert.equal(await value(targetClient, 'off:a'), undefined);
    assert.equal(off.counters.fills.attempted, 0);
    assert.equal(off.counters.skipped.read, 1);
    await off.close();
  });
});

describe('Replayer as KeyFreshness', () => {
  it('tells keys mutated after a mark, and answers changed once it cannot tell', async () => {
    const target = await startMemcached();
    try {
      const replayer = new Replayer({ target: poolOf([target]), freshnessSlots: 16 });
      const mark = replayer.mark();
      replayer.apply(setOp('kf:a', '1'));
      replayer.apply(op('get', 'kf:b', 'hit', { value: Buffer.from('x') }));
      replayer.apply(op('add', 'kf:c', 'not_stored', { value: Buffer.from('x') }));
      assert.equal(replayer.changedSince(Buffer.from('kf:a'), mark), true);
      assert.equal(replayer.changedSince(Buffer.from('kf:b'), mark), false);
      assert.equal(replayer.changedSince(Buffer.from('kf:c'), mark), false);
      const later = replayer.mark();
      assert.equal(replayer.changedSince(Buffer.from('kf:a'), later), false);
      // 16 slots: after many other keys, nothing can be told about kf:a any more.
      for (let i = 0; i < 200; i++) replayer.apply(op('delete', `kf:other:${i}`, 'deleted'));
      assert.equal(replayer.changedSince(Buffer.from('kf:a'), later), true);
      await replayer.close();
    } finally {
      await target.stop();
    }
  });
});
