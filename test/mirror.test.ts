import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import Memcached from 'memcached';
import memjs from 'memjs';
import { MemcachedClient } from '../src/net/client.js';
import { assertMirrored, mirrorRig, waitForRequests, type MirrorRig } from './support/mirror.js';

/** Sends raw protocol bytes on one connection and resolves with everything the server answered until `until` shows up. */
async function raw(socket: Socket, bytes: string | Buffer, until: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      if (text.includes(until)) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(bytes);
  });
}

async function open(host: string, port: number): Promise<Socket> {
  const socket = connect({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

async function withRig(
  options: Parameters<typeof mirrorRig>[0],
  body: (rig: MirrorRig) => Promise<void>,
): Promise<void> {
  const rig = await mirrorRig(options);
  try {
    await body(rig);
  } finally {
    await rig.close();
  }
}

function promisify<T>(call: (done: (err: unknown, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => call((err, value) => (err ? reject(err) : resolve(value))));
}

describe('memshift mirror (real memcached, real tcpdump on lo)', () => {
  it('applies text-protocol mutations from the npm memcached client, failed add/cas included', async () => {
    await withRig({}, async (rig) => {
      const app = new Memcached(rig.source.address, { retries: 0, timeout: 5000 });
      const keys: string[] = [];
      try {
        for (let i = 0; i < 300; i++) {
          const key = `text:${i}`;
          keys.push(key);
          await promisify<boolean>((done) => app.set(key, `value-${i}`, 300 + i, done));
        }
        // add on an existing key fails on the source: must not be applied
        await promisify<boolean>((done) =>
          app.add('text:1', 'should-not-win', 100, (err) => done(null, !err)),
        );
        await promisify<boolean>((done) => app.replace('text:2', 'replaced', 200, done));
        await promisify<boolean>((done) => app.append('text:3', '+tail', done));
        await promisify<boolean>((done) => app.prepend('text:4', 'head+', done));
        const got = await promisify<{ cas: string }>((done) => app.gets('text:5', done as never));
        await promisify<boolean>((done) => app.cas('text:5', 'cas-won', got.cas, 300, done));
        await promisify<boolean>((done) =>
          app.cas('text:6', 'cas-lost', '1', 300, (err: unknown) => done(err, false)),
        );
        await promisify<boolean>((done) => app.del('text:7', done));
        await promisify<boolean>((done) => app.touch('text:8', 30, (err: unknown) => done(err, true)));
        keys.push('text:counter');
        await promisify<boolean>((done) => app.set('text:counter', '10', 0, done));
        await promisify<number>((done) => app.incr('text:counter', 5, done as never));
        await promisify<number>((done) => app.decr('text:counter', 3, done as never));
      } finally {
        app.end();
      }
      await waitForRequests(rig.job, keys.length + 10);
      const summary = await rig.finish();
      assert.equal(summary.error, undefined);
      assert.ok(summary.drained);
      assert.equal((await rig.sourceClient.get('text:1'))?.value.toString(), 'value-1');
      assert.equal(await assertMirrored(rig, keys), keys.length - 1);
      assert.equal((await rig.targetClient.clientFor('text:5').get('text:5'))?.value.toString(), 'cas-won');
      assert.equal((await rig.targetClient.clientFor('text:6').get('text:6'))?.value.toString(), 'value-6');
    });
  });

  it('applies binary-protocol mutations from memjs', async () => {
    await withRig({}, async (rig) => {
      const app = memjs.Client.create(rig.source.address, { retries: 0, timeout: 5 });
      const keys: string[] = [];
      try {
        for (let i = 0; i < 200; i++) {
          keys.push(`bin:${i}`);
          await app.set(`bin:${i}`, `binary-${i}`, { expires: 600 });
        }
        await app.add('bin:1', 'nope', { expires: 10 }).catch(() => undefined);
        await app.replace('bin:2', 'replaced', { expires: 100 });
        await app.delete('bin:3');
        keys.push('bin:n');
        await app.set('bin:n', '7', { expires: 0 });
        await app.increment('bin:n', 5);
        await app.get('bin:4');
      } finally {
        app.close();
      }
      await waitForRequests(rig.job, keys.length + 5);
      const summary = await rig.finish();
      assert.equal(summary.error, undefined);
      assert.equal(await assertMirrored(rig, keys), keys.length - 1);
    });
  });

  it('pairs pipelined meta commands in quiet mode, and noreply text commands', async () => {
    await withRig({}, async (rig) => {
      const socket = await open(rig.source.host, rig.source.port);
      const keys = Array.from({ length: 50 }, (_, i) => `meta:${i}`);
      let batch = '';
      // Quiet pipelines carry opaque tokens, as meta clients send them, so each reply names its request.
      for (const [i, key] of keys.entries())
        batch += `ms ${key} ${String(i).length} q T500 F${i} O${i}\r\n${i}\r\n`;
      batch += 'ms meta:1 1 q ME O1001\r\nx\r\n'; // add on an existing key: NS comes back, nothing applied
      batch += 'md meta:2 q O2000\r\nma meta:3 D10 v O2001\r\n';
      batch += 'set noreply:1 3 0 2 noreply\r\nhi\r\nadd meta:4 0 0 1 noreply\r\nz\r\n';
      batch += 'mn\r\n';
      await raw(socket, batch, 'MN\r\n');
      socket.destroy();
      await waitForRequests(rig.job, keys.length + 6);
      await rig.finish();
      await assertMirrored(rig, [...keys.filter((k) => k !== 'meta:4'), 'noreply:1']);
      // add noreply: the outcome is unknown, so the target must not hold a value the source may not have
      const target = await rig.targetClient.clientFor('meta:4').get('meta:4');
      assert.ok(target === undefined || target.value.toString() === '4');
    });
  });

  it('carries 1 MiB values over many packets and fills multi-gets seen across packets', async () => {
    let before: string[] = [];
    await withRig(
      {
        beforeCapture: async (source) => {
          const client = new MemcachedClient(source.address);
          before = Array.from({ length: 150 }, (_, i) => `pre:${i}`);
          await Promise.all(
            before.map((k, i) => client.set(k, `existing-${i}`.repeat(20), { exptime: 900, flags: i })),
          );
          await client.close();
        },
      },
      async (rig) => {
        const app = new MemcachedClient(rig.source.address);
        const big = Buffer.alloc(1024 * 1024, 'memshift-');
        await app.set('big:1', big, { flags: 9, exptime: 1000 });
        // a 150-key get whose VALUE blocks span many packets: every hit fills the new pool
        const items = await app.getMany(before);
        assert.equal(items.length, before.length);
        await app.close();
        await waitForRequests(rig.job, 2);
        const summary = await rig.finish();
        assert.equal(await assertMirrored(rig, ['big:1', ...before]), before.length + 1);
        assert.ok(summary.routes[0]!.replay.fills.applied >= before.length);
      },
    );
  });

  it('joins connections opened before capture and follows 1,000 short-lived connections', async () => {
    let early: Socket | undefined;
    await withRig(
      {
        beforeCapture: async (source) => {
          early = await open(source.host, source.port);
          await raw(early, 'set early:0 0 0 1\r\na\r\n', 'STORED\r\n');
        },
      },
      async (rig) => {
        await raw(early!, 'set early:1 5 0 3\r\nabc\r\ndelete early:0\r\n', 'DELETED\r\n');
        early!.destroy();
        const keys: string[] = ['early:0', 'early:1'];
        for (let i = 0; i < 1000; i++) {
          const socket = await open(rig.source.host, rig.source.port);
          await raw(socket, `set short:${i} ${i} 0 ${String(i).length}\r\n${i}\r\n`, 'STORED\r\n');
          socket.end();
          keys.push(`short:${i}`);
        }
        await waitForRequests(rig.job, 1002);
        const summary = await rig.finish();
        assert.ok(summary.capture.flows.flowsOpened >= 1000);
        // The joined connection's set was read before any reply proved the flow in step: its bytes
        // could have been the inside of a value, so the key may only be lost on the target.
        const joined = await rig.targetClient.clientFor('early:1').get('early:1');
        assert.ok(joined === undefined || joined.value.toString() === 'abc');
        assert.equal(await assertMirrored(rig, keys.slice(2)), 1000);
        assert.equal(await rig.targetClient.clientFor('early:0').get('early:0'), undefined);
      },
    );
  });

  it('mirrors over IPv6 loopback', async () => {
    await withRig({ host: '::1' }, async (rig) => {
      const app = new MemcachedClient(rig.source.address);
      const keys = Array.from({ length: 100 }, (_, i) => `v6:${i}`);
      await Promise.all(keys.map((k) => app.set(k, k, { exptime: 100 })));
      await app.close();
      await waitForRequests(rig.job, keys.length);
      await rig.finish();
      assert.equal(await assertMirrored(rig, keys), keys.length);
    });
  });

  it('deletes a counter on the target when its incr result differs from the source', async () => {
    await withRig({}, async (rig) => {
      const app = new MemcachedClient(rig.source.address);
      await app.set('ctr', '100');
      await waitForRequests(rig.job, 1);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      // the target drifts (someone wrote it directly); the next incr results differ
      await rig.targetClient.clientFor('ctr').set('ctr', '5000');
      assert.equal(await app.incr('ctr', 1), 101n);
      await app.close();
      await waitForRequests(rig.job, 2);
      const summary = await rig.finish();
      assert.equal(summary.routes[0]!.replay.diverged, 1);
      const target = await rig.targetClient.clientFor('ctr').get('ctr');
      assert.ok(target === undefined || target.value.toString() === '101');
    });
  });

  it('keeps capturing while a target is stopped, then invalidates what it had to drop', async () => {
    await withRig({ replay: { maxQueuedPerServer: 50 } }, async (rig) => {
      const app = new MemcachedClient(rig.source.address);
      const keys = Array.from({ length: 600 }, (_, i) => `down:${i}`);
      // stale values planted on the target: they must be gone or replaced afterwards
      await Promise.all(keys.map((k) => rig.targetClient.clientFor(k).set(k, 'stale')));
      const stopped = rig.targets[0]!;
      stopped.process.kill('SIGSTOP');
      try {
        for (const k of keys) await app.set(k, `fresh-${k}`);
        await waitForRequests(rig.job, keys.length);
        await new Promise((resolve) => setTimeout(resolve, 1500));
      } finally {
        stopped.process.kill('SIGCONT');
      }
      await app.close();
      const summary = await rig.finish();
      assert.ok(summary.routes[0]!.replay.dropped > 0, 'some writes to the stopped server were dropped');
      for (const k of keys) {
        const item = await rig.targetClient.clientFor(k).get(k);
        assert.ok(
          item === undefined || item.value.toString() === `fresh-${k}`,
          `${k}: ${item?.value.toString()}`,
        );
      }
    });
  });

  it('skips flush_all into a reshaped pool (counted), and replicates it over a 1:1 map', async () => {
    await withRig({}, async (rig) => {
      const app = new MemcachedClient(rig.source.address);
      await app.set('f:1', 'x');
      await app.flushAll();
      await app.close();
      await waitForRequests(rig.job, 2);
      const summary = await rig.finish();
      assert.equal(summary.routes[0]!.replay.skipped['flush_unmapped'] ?? 0, 1);
    });
    await withRig({ targets: 1, mapped: true }, async (rig) => {
      await rig.targetClient.clients[0]!.set('only-on-target', 'x');
      const app = new MemcachedClient(rig.source.address);
      await app.flushAll();
      await app.close();
      await waitForRequests(rig.job, 1);
      await rig.finish();
      assert.equal(await rig.targetClient.clients[0]!.get('only-on-target'), undefined);
    });
  });

  it('follows memcslap from libmemcached-tools, text and binary', async () => {
    await withRig({}, async (rig) => {
      for (const protocol of [[], ['--binary']]) {
        const run = spawnSync(
          'memcslap',
          [
            `--servers=${rig.source.address}`,
            '--test=set',
            '--concurrency=4',
            '--execute-number=300',
            ...protocol,
          ],
          { encoding: 'utf8', timeout: 60_000 },
        );
        assert.equal(run.status, 0, run.stderr);
      }
      const keys: Buffer[] = [];
      for await (const entry of rig.sourceClient.metadump('hash')) keys.push(Buffer.from(entry.key));
      assert.ok(keys.length > 100);
      await waitForRequests(rig.job, keys.length);
      await new Promise((resolve) => setTimeout(resolve, 500));
      await rig.finish();
      assert.equal(await assertMirrored(rig, keys), keys.length);
    });
  });
});
