import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCopy, type CopyProgress } from '../src/jobs/copy.js';
import { BatchLink, CRLF, RequestBuilder } from '../src/jobs/meta-batch.js';
import { runVerify } from '../src/jobs/verify.js';
import { parseEndpoint } from '../src/net/address.js';
import { MemcachedClient } from '../src/net/client.js';
import type { KeyFreshness } from '../src/replay/freshness.js';
import { parsePoolSpec, type Pool } from '../src/topology/pool.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

interface Spec {
  key: Buffer;
  value: Buffer;
  flags: number;
  ttl: number;
}

/**
 * Loads items with pipelined quiet meta sets (ms ... q), a batch per 500
 * items. A TTL over 30 days is sent as unix time in the server's clock, as
 * memcached reads it.
 */
async function load(address: string, items: Spec[]): Promise<void> {
  const link = new BatchLink(parseEndpoint(address), {});
  const client = new MemcachedClient(address);
  const now = Number((await client.stats()).get('time'));
  await client.close();
  try {
    for (let i = 0; i < items.length; i += 500) {
      const b = new RequestBuilder();
      for (const item of items.slice(i, i + 500)) {
        b.ascii('ms ');
        const base64 = b.key(item.key);
        const t = item.ttl > 30 * 86400 ? now + item.ttl : item.ttl;
        b.ascii(` ${item.value.length}${base64 ? ' b' : ''} T${t} F${item.flags} q\r\n`);
        b.bytes(item.value);
        b.bytes(CRLF);
      }
      await link.send(b.finish(), 'load', (frame) => assert.fail(`load: ${frame.code}`));
    }
  } finally {
    await link.close();
  }
}

function pool(servers: MemcachedServer[], hash = 'ketama'): Pool {
  return parsePoolSpec(servers.map((s) => s.address).join(','), hash, { where: 'test' });
}

/** Mixed items: flags, TTLs (none, an hour, 40 days), sizes; binary keys; a few 1 MiB values. */
function makeItems(count: number, prefix: string): Spec[] {
  const items: Spec[] = [];
  for (let i = 0; i < count; i++) {
    let key = Buffer.from(`${prefix}:${i}`);
    if (i % 997 === 0) key = Buffer.concat([Buffer.from(`${prefix} bin\n`), Buffer.from([0, 255, i & 255])]);
    const size = i % 50_000 === 7 ? 1024 * 1024 : i % 10 === 0 ? 2000 + (i % 3000) : 10 + (i % 90);
    const value = Buffer.alloc(size, i % 251);
    value.write(`v${i}`);
    const ttl = i % 3 === 0 ? 0 : i % 3 === 1 ? 3600 : 40 * 86400;
    items.push({ key, value, flags: (i * 2654435761) >>> 0, ttl });
  }
  return items;
}

describe('memshift copy (real memcached)', () => {
  const sources: MemcachedServer[] = [];
  const targets: MemcachedServer[] = [];
  let dir: string;

  before(async () => {
    for (let i = 0; i < 2; i++) sources.push(await startMemcached({ memoryMb: 256, args: ['-I', '2m'] }));
    for (let i = 0; i < 3; i++) targets.push(await startMemcached({ memoryMb: 256, args: ['-I', '2m'] }));
    dir = await mkdtemp(join(tmpdir(), 'memshift-copy-'));
  });

  after(async () => {
    await Promise.all([...sources, ...targets].map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  async function flushTargets(): Promise<void> {
    for (const t of targets) {
      const c = new MemcachedClient(t.address);
      await c.flushAll();
      await c.close();
    }
  }

  it('copies 100,000 keys from 2 servers into a 3-server ketama pool; verify reports 100%, TTLs never longer and within 3 s', async () => {
    const items = makeItems(100_000, 'k');
    await load(sources[0]!.address, items.slice(0, 50_000));
    await load(sources[1]!.address, items.slice(50_000));
    const from = pool(sources);
    const to = pool(targets);
    const report = await runCopy({ from, to });
    assert.equal(report.interrupted, false);
    assert.equal(report.pointInTime, true);
    assert.deepEqual(report.errors, []);
    assert.equal(report.total, 100_000);
    assert.equal(report.copied, 100_000);
    assert.equal(report.done, 100_000);
    assert.deepEqual(
      report.sources.map((s) => s.method),
      ['metadump-hash', 'metadump-hash'],
    );

    const check = await runVerify({ from, to, sample: Infinity });
    assert.equal(check.keys.source, 100_000);
    assert.equal(check.keys.present, 100_000);
    assert.equal(check.keys.coverage, 1);
    assert.equal(check.bytes.coverage, 1);
    assert.equal(check.values.compared, 100_000);
    assert.equal(check.values.different, 0);
    assert.equal(check.flags.different, 0);
    assert.equal(check.ttl.neverVsExpiring, 0);
    // Copies are written one second short of the source's remaining TTL, so they never outlive it.
    assert.equal(check.ttl.longer, 0);
    assert.ok(check.ttl.maxDriftSeconds <= 3, `TTL drift ${check.ttl.maxDriftSeconds}`);
    assert.equal(check.wrongServer.keys, 0);
    assert.equal(check.passed, true);

    // Every key landed where the target pool's distribution puts it, with its value and flags.
    const clients = targets.map((t) => new MemcachedClient(t.address));
    const origins = sources.map((s) => new MemcachedClient(s.address));
    try {
      for (const [i, item] of items.entries()) {
        if (i % 499 !== 0) continue;
        const owner = clients[to.distribution.serverFor(item.key)]!;
        const origin = await origins[i < 50_000 ? 0 : 1]!.mg(item.key, ['t']);
        const got = await owner.mg(item.key, ['v', 'f', 't']);
        assert.equal(got.code, 'VA', `missing ${JSON.stringify(item.key.toString('latin1'))}`);
        assert.ok(got.value?.equals(item.value));
        assert.ok(got.flags.includes(`f${item.flags}`));
        const t = Number(got.flags.find((f) => f.startsWith('t'))!.slice(1));
        const left = Number(origin.flags.find((f) => f.startsWith('t'))!.slice(1));
        if (item.ttl === 0) assert.equal(t, -1);
        else assert.ok(t <= left && left - t <= 3, `ttl ${t}, source ${left}`);
      }
    } finally {
      await Promise.all([...clients, ...origins].map((c) => c.close()));
    }
  });

  it('never overwrites a value already on the target (add mode) and counts it', async () => {
    const from = pool(sources);
    const to = pool(targets);
    const key = Buffer.from('k:5');
    const owner = new MemcachedClient(targets[to.distribution.serverFor(key)]!.address);
    await owner.set(key, 'fresher', { flags: 9 });
    await owner.close();
    const report = await runCopy({ from, to });
    assert.equal(report.copied, 0);
    assert.equal(report.skipped.exists, 100_000);
    const check = new MemcachedClient(targets[to.distribution.serverFor(key)]!.address);
    assert.equal((await check.get(key))?.value.toString(), 'fresher');
    await check.close();
  });

  it('an interrupted copy resumes from its checkpoint without starting over', async () => {
    await flushTargets();
    const from = pool(sources);
    const to = pool(targets);
    const checkpoint = join(dir, 'copy.checkpoint');
    const abort = new AbortController();
    const first = await runCopy(
      { from, to, checkpoint, signal: abort.signal, rate: 200_000, concurrency: 2 },
      {
        progressEveryMs: 0,
        onProgress: (p: CopyProgress) => {
          if (p.phase === 'copying' && p.done >= 20_000) abort.abort();
        },
      },
    );
    assert.equal(first.interrupted, true);
    assert.ok(first.done >= 20_000 && first.done < 100_000, `first run did ${first.done}`);
    await stat(checkpoint);

    const second = await runCopy({ from, to, checkpoint, resume: true });
    assert.equal(second.interrupted, false);
    assert.deepEqual(second.errors, []);
    assert.ok(second.sources.every((s) => s.method === 'checkpoint'));
    const resumedAt = second.sources.reduce((n, s) => n + s.resumedAt, 0);
    assert.ok(resumedAt > 0 && resumedAt <= first.done, `resumed at ${resumedAt}`);
    // Only the unfinished part was fetched: no key of the finished prefix came round again.
    assert.equal(second.total, 100_000 - resumedAt);
    assert.ok(second.skipped.exists <= first.done - resumedAt, `re-sent ${second.skipped.exists}`);
    assert.equal(first.copied + second.copied, 100_000);
    await assert.rejects(stat(checkpoint), /ENOENT/);
    const check = await runVerify({ from, to, sample: 0 });
    assert.equal(check.keys.coverage, 1);
  });

  it('with mirroring, keys mutated or deleted on the source during the copy end up exactly as on the source', async () => {
    await flushTargets();
    const from = pool(sources);
    const to = pool(targets);
    // A stand-in for mirror: it applies each mutation to the source, then to the target, and
    // records it in the order of events, as the mirror job does for captured traffic.
    let seq = 0;
    const changed = new Map<string, number>();
    const freshness: KeyFreshness = {
      mark: () => seq,
      changedSince: (key, mark) => (changed.get(key.toString('latin1')) ?? -1) >= mark,
    };
    const src = sources.map((s) => new MemcachedClient(s.address));
    const dst = targets.map((t) => new MemcachedClient(t.address));
    // The sources were loaded by halves; the target pool places keys by its distribution.
    const ownerOf = (key: Buffer, p: Pool, c: MemcachedClient[]): MemcachedClient =>
      c[p.distribution.serverFor(key)]!;
    const deleted: Buffer[] = [];
    const updated: Buffer[] = [];
    let mutating: Promise<void> = Promise.resolve();
    let round = 0;
    const mutate = async (r: number): Promise<void> => {
      for (let n = 0; n < 200; n++) {
        const i = (r * 7919 + n * 104_729) % 100_000;
        if (i % 997 === 0) continue;
        const key = Buffer.from(`k:${i}`);
        const s = src[i < 50_000 ? 0 : 1]!;
        const d = ownerOf(key, to, dst);
        if (n % 2 === 0) {
          seq++;
          changed.set(key.toString('latin1'), seq);
          await s.delete(key);
          await d.delete(key);
          deleted.push(key);
        } else {
          const value = Buffer.from(`updated-${r}-${n}`);
          seq++;
          changed.set(key.toString('latin1'), seq);
          await s.set(key, value, { flags: 77 });
          await d.set(key, value, { flags: 77 });
          updated.push(key);
        }
      }
    };
    const report = await runCopy(
      { from, to, freshness, rate: 150_000, concurrency: 4, batchKeys: 128 },
      {
        progressEveryMs: 0,
        onProgress: (p) => {
          if (p.phase !== 'copying' || round >= 10 || p.done < round * 8_000) return;
          const r = round++;
          mutating = mutating.then(() => mutate(r));
        },
      },
    );
    await mutating;
    assert.equal(report.pointInTime, false);
    assert.ok(round > 0);
    for (const key of [...deleted, ...updated]) {
      const i = Number(key.toString().slice(2));
      const a = await src[i < 50_000 ? 0 : 1]!.mg(key, ['v', 'f']);
      const b = await ownerOf(key, to, dst).mg(key, ['v', 'f']);
      assert.equal(b.code, a.code, `key ${key.toString()}`);
      if (a.code === 'VA') {
        assert.ok(b.value?.equals(a.value!), `value of ${key.toString()}`);
        assert.deepEqual(b.flags, a.flags);
      }
    }
    await Promise.all([...src, ...dst].map((c) => c.close()));
    const check = await runVerify({ from, to, sample: Infinity });
    assert.equal(check.values.different, 0);
    assert.equal(check.keys.coverage, 1);
  });
});

describe('memshift copy: expiry and filters (real memcached)', () => {
  let source: MemcachedServer;
  let target: MemcachedServer;

  before(async () => {
    source = await startMemcached({ memoryMb: 32 });
    target = await startMemcached({ memoryMb: 32 });
  });

  after(async () => {
    await Promise.all([source.stop(), target.stop()]);
  });

  it('skips and counts keys that expire before they are read; never writes them', async () => {
    const client = new MemcachedClient(source.address);
    // Short-lived keys, written first and never read: the coldest, copied last.
    for (let i = 0; i < 50; i++) await client.set(`short:${i}`, 'x', { exptime: 2 });
    for (let i = 0; i < 1000; i++) await client.set(`hot:${i}`, 'y', { exptime: 3600 });
    for (let i = 0; i < 1000; i += 100)
      await client.getMany(Array.from({ length: 100 }, (_, k) => `hot:${i + k}`));
    await client.close();
    // 1000 hot keys at 250 keys/s take at least 3.9 s: the 2-second keys are gone by then.
    const report = await runCopy({ from: pool([source]), to: pool([target]), rate: 250, batchKeys: 50 }, {});
    assert.equal(report.copied, 1000);
    assert.equal(report.skipped.expired, 50);
    assert.equal(report.skipped.vanished, 0);
    const check = new MemcachedClient(target.address);
    assert.equal((await check.getMany(Array.from({ length: 50 }, (_, i) => `short:${i}`))).length, 0);
    assert.equal((await check.getMany(['hot:0', 'hot:999'])).length, 2);
    await check.close();
  });

  it('filters by prefix, regex, size and TTL, and caps TTLs at --max-ttl', async () => {
    const c = new MemcachedClient(source.address);
    await c.flushAll();
    await c.set('user:1', 'a', { exptime: 0 });
    await c.set('user:2', Buffer.alloc(5000), { exptime: 0 });
    await c.set('user:3', 'c', { exptime: 30 });
    await c.set('user:4', 'd', { exptime: 5000 });
    await c.set('session:1', 'e', { exptime: 0 });
    await c.close();
    const t = new MemcachedClient(target.address);
    await t.flushAll();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const report = await runCopy({
      from: pool([source]),
      to: pool([target]),
      prefix: Buffer.from('user:'),
      match: /^user:[1-4]$/,
      maxSize: 1000,
      minTtl: 60,
      maxTtl: 600,
    });
    assert.equal(report.copied, 2);
    assert.equal(report.skipped.filtered, 1);
    assert.equal(report.skipped['too-large'], 1);
    assert.equal(report.skipped['short-ttl'], 1);
    const ttl = async (key: string): Promise<number | undefined> => {
      const r = await t.mg(key, ['t']);
      return r.code === 'HD' ? Number(r.flags[0]!.slice(1)) : undefined;
    };
    // No expiry and 5000 s are both capped at 600 s.
    assert.ok((await ttl('user:1'))! <= 600 && (await ttl('user:1'))! >= 590);
    assert.ok((await ttl('user:4'))! <= 600 && (await ttl('user:4'))! >= 590);
    assert.equal(await ttl('user:2'), undefined);
    assert.equal(await ttl('user:3'), undefined);
    assert.equal(await ttl('session:1'), undefined);
    await t.close();
  });
});
