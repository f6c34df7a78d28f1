import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MemcachedClient } from '../src/net/client.js';
import { ConnectionError, QueueFullError, ServerReplyError, TimeoutError } from '../src/net/errors.js';
import { freePort, startMemcached, type MemcachedServer } from './support/memcached.js';

describe('MemcachedClient against real memcached', () => {
  let server: MemcachedServer;
  let client: MemcachedClient;

  before(async () => {
    server = await startMemcached({ args: ['-I', '2m'] });
    client = new MemcachedClient(server.address, { connections: 2 });
  });
  after(async () => {
    await client.close();
    await server.stop();
  });

  it('stores and reads with the text commands', async () => {
    assert.equal(await client.set('t:a', 'alpha', { flags: 42, exptime: 100 }), 'STORED');
    const item = await client.get('t:a');
    assert.equal(item?.value.toString(), 'alpha');
    assert.equal(item?.flags, 42);
    assert.equal(item?.cas, undefined);
    assert.equal(await client.get('t:missing'), undefined);
    assert.equal(await client.add('t:a', 'x'), 'NOT_STORED');
    assert.equal(await client.add('t:b', 'beta'), 'STORED');
    assert.equal(await client.replace('t:none', 'x'), 'NOT_STORED');
    assert.equal(await client.replace('t:b', 'BETA'), 'STORED');
    assert.equal(await client.append('t:b', '>'), 'STORED');
    assert.equal(await client.prepend('t:b', '<'), 'STORED');
    assert.equal((await client.get('t:b'))?.value.toString(), '<BETA>');
    const items = await client.getMany(['t:a', 't:nothing', 't:b']);
    assert.deepEqual(
      items.map((i) => [i.key.toString(), i.value.toString()]),
      [
        ['t:a', 'alpha'],
        ['t:b', '<BETA>'],
      ],
    );
  });

  it('does compare-and-swap with gets', async () => {
    await client.set('t:cas', 'v1');
    const first = await client.gets('t:cas');
    assert.equal(typeof first?.cas, 'bigint');
    assert.equal(await client.cas('t:cas', 'v2', first?.cas ?? 0n), 'STORED');
    assert.equal(await client.cas('t:cas', 'v3', first?.cas ?? 0n), 'EXISTS');
    assert.equal(await client.cas('t:cas-gone', 'v', 1n), 'NOT_FOUND');
    assert.equal((await client.get('t:cas'))?.value.toString(), 'v2');
  });

  it('deletes, counts, touches and gets-and-touches', async () => {
    await client.set('t:n', '10');
    assert.equal(await client.incr('t:n', 5), 15n);
    assert.equal(await client.decr('t:n', 20n), 0n);
    assert.equal(await client.incr('t:n-missing'), undefined);
    assert.equal(await client.incr('t:n', 18446744073709551615n), 18446744073709551615n);
    assert.equal(await client.touch('t:n', 300), true);
    assert.equal(await client.touch('t:n-missing', 300), false);
    const touched = await client.gat(600, ['t:n'], { cas: true });
    assert.equal(touched.length, 1);
    assert.equal(typeof touched[0]?.cas, 'bigint');
    assert.equal(await client.delete('t:n'), true);
    assert.equal(await client.delete('t:n'), false);
  });

  it('returns the server error replies as ServerReplyError', async () => {
    await client.set('t:text', 'not a number');
    await assert.rejects(client.incr('t:text'), (err: unknown) => {
      assert.ok(err instanceof ServerReplyError);
      assert.equal(err.reply.error, 'CLIENT_ERROR');
      assert.match(err.message, /non-numeric/);
      return true;
    });
    await assert.rejects(client.stats(['no-such-group']), ServerReplyError);
    // The connection is still in step after error replies.
    assert.equal((await client.get('t:text'))?.value.toString(), 'not a number');
  });

  it('speaks the meta commands, including base64 binary keys', async () => {
    const hd = await client.ms('m:a', 'meta-value', ['T60', 'F7']);
    assert.equal(hd.code, 'HD');
    const va = await client.mg('m:a', ['v', 'f', 't', 'k']);
    assert.equal(va.code, 'VA');
    assert.equal(va.value?.toString(), 'meta-value');
    assert.ok(va.flags.includes('f7'));
    assert.ok(va.flags.some((f) => f.startsWith('t') && Number(f.slice(1)) <= 60 && Number(f.slice(1)) > 50));
    assert.equal((await client.ms('m:a', 'other', ['ME'])).code, 'NS');
    assert.equal((await client.mg('m:none', ['v'])).code, 'EN');
    assert.equal((await client.ma('m:none')).code, 'NF');
    await client.ms('m:n', '5', []);
    const incremented = await client.ma('m:n', ['D10', 'v']);
    assert.equal(incremented.value?.toString(), '15');
    assert.equal((await client.md('m:n')).code, 'HD');
    assert.equal((await client.md('m:n')).code, 'NF');

    const binaryKey = Buffer.from([0x00, 0xff, 0x20, 0x0d, 0x0a, 0x41]);
    assert.equal((await client.ms(binaryKey, 'bin', ['T0'])).code, 'HD');
    const back = await client.mg(binaryKey, ['v']);
    assert.equal(back.value?.toString(), 'bin');
    await assert.rejects(client.mg('m:a', ['v', 'q']), /"q" meta flag/);
  });

  it('moves 1 MiB values both ways', async () => {
    const big = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    assert.equal(await client.set('t:big', big), 'STORED');
    const back = await client.get('t:big');
    assert.ok(back?.value.equals(big));
    const meta = await client.mg('t:big', ['v', 's']);
    assert.ok(meta.value?.equals(big));
  });

  it('keeps thousands of pipelined requests in order', async () => {
    const n = 3000;
    const writes = Array.from({ length: n }, (_, i) => client.set(`p:${i}`, `value-${i}`));
    assert.ok((await Promise.all(writes)).every((r) => r === 'STORED'));
    const reads = await Promise.all(Array.from({ length: n }, (_, i) => client.get(`p:${i}`)));
    reads.forEach((item, i) => assert.equal(item?.value.toString(), `value-${i}`));
  });

  it('reads stats, stats with arguments, version and flush_all', async () => {
    const stats = await client.stats();
    assert.match(stats.get('version') ?? '', /^1\.\d+\.\d+/);
    assert.ok(Number(stats.get('curr_items')) > 0);
    const settings = await client.stats(['settings']);
    assert.equal(settings.get('item_size_max'), String(2 * 1024 * 1024));
    assert.match(await client.version(), /^1\.\d+\.\d+/);
    await client.verbosity(0);
  });

  it('streams lru_crawler metadump with bounded read-ahead', async () => {
    const dumpServer = await startMemcached();
    const dumper = new MemcachedClient(dumpServer.address, { dumpReadAhead: 16 });
    try {
      const n = 2000;
      await Promise.all(Array.from({ length: n }, (_, i) => dumper.set(`d:${i}`, 'x', { exptime: 1000 })));
      await dumper.ms(Buffer.from([0x01, 0x20, 0x02]), 'bin', []);
      const seen = new Set<string>();
      let exp = 0;
      for await (const entry of dumper.metadump('hash')) {
        seen.add(entry.key.toString('latin1'));
        if (entry.key.toString() === 'd:5') exp = entry.exp;
      }
      assert.equal(seen.size, n + 1);
      assert.ok(seen.has('\x01 \x02'));
      const now = Number((await dumper.stats()).get('time'));
      assert.ok(exp > now + 990 && exp <= now + 1000, `exp ${exp} near ${now} + 1000`);
      // Abandoning a dump part way closes its connection and leaves the client usable.
      let taken = 0;
      for await (const _entry of dumper.metadump('all')) if (++taken === 10) break;
      assert.equal(taken, 10);
      assert.equal((await dumper.get('d:1'))?.value.toString(), 'x');
      await dumper.flushAll();
      assert.equal(await dumper.get('d:1'), undefined);
    } finally {
      await dumper.close();
      await dumpServer.stop();
    }
  });
});

describe('MemcachedClient failure handling', () => {
  it('fails fast with a clear error when nothing listens', async () => {
    const port = await freePort();
    const client = new MemcachedClient(`127.0.0.1:${port}`);
    await assert.rejects(client.get('k'), (err: unknown) => {
      assert.ok(err instanceof ConnectionError);
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}: connect .*refused`));
      return true;
    });
    await assert.rejects(client.get('k'), ConnectionError);
    client.destroy();
  });

  it('times out a stalled server and recovers when it resumes', async () => {
    const server = await startMemcached();
    const client = new MemcachedClient(server.address, { requestTimeoutMs: 300 });
    try {
      assert.equal(await client.set('k', 'v'), 'STORED');
      server.process.kill('SIGSTOP');
      await assert.rejects(client.get('k'), TimeoutError);
      assert.equal(client.counters.timeouts, 1);
      server.process.kill('SIGCONT');
      let value: string | undefined;
      for (let attempt = 0; attempt < 50 && value === undefined; attempt++) {
        value = await client.get('k').then(
          (item) => item?.value.toString(),
          () => new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 100)),
        );
      }
      assert.equal(value, 'v');
    } finally {
      client.destroy();
      await server.stop();
    }
  });

  it('reconnects after the server restarts on the same port', async () => {
    const first = await startMemcached();
    const client = new MemcachedClient(first.address, { backoffInitialMs: 20, backoffMaxMs: 100 });
    try {
      assert.equal(await client.set('k', 'v'), 'STORED');
      await first.stop();
      await assert.rejects(client.get('k'), ConnectionError);
      const second = await startMemcached({ args: [], port: first.port });
      try {
        let stored: string | undefined;
        for (let attempt = 0; attempt < 50 && stored === undefined; attempt++) {
          stored = await client
            .set('k2', 'v2')
            .catch(() => new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 50)));
        }
        assert.equal(stored, 'STORED');
        assert.ok(client.counters.connects >= 2);
      } finally {
        await second.stop();
      }
    } finally {
      client.destroy();
    }
  });

  it('refuses requests beyond the bounded queue and counts them', async () => {
    const server = await startMemcached();
    const client = new MemcachedClient(server.address, { maxPending: 8 });
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => client.set(`q:${i}`, 'v')),
      );
      const refused = results.filter((r) => r.status === 'rejected');
      assert.equal(refused.length, 12);
      assert.ok(refused.every((r) => r.status === 'rejected' && r.reason instanceof QueueFullError));
      assert.equal(client.counters.overflows, 12);
      assert.equal(await client.get('q:7').then((i) => i?.value.toString()), 'v');
    } finally {
      await client.close();
      await server.stop();
    }
  });
});
