/**
 * One client never hurts another, and the proxy never holds on to what it
 * refused: clients closed for a protocol error or refused over the
 * connection limit lose their sockets at once (so they neither hold slots
 * nor block a stop), and a request left incomplete times out.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Proxy, type ProxyOptions } from '../src/jobs/proxy.js';
import { MemcachedClient } from '../src/net/client.js';
import { parsePoolSpec } from '../src/topology/pool.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const f of cleanups.reverse()) await f().catch(() => undefined);
});

async function server(args: string[] = []): Promise<MemcachedServer> {
  const s = await startMemcached({ args });
  cleanups.push(() => s.stop());
  return s;
}

async function startProxy(
  extra: Partial<ProxyOptions> = {},
): Promise<{ p: Proxy; port: number; primary: MemcachedServer }> {
  const [primary, secondary] = await Promise.all([server(), server()]);
  const p = new Proxy({
    mode: 'shadow',
    primary: parsePoolSpec(primary!.address, 'ketama'),
    secondary: parsePoolSpec(secondary!.address, 'ketama'),
    ...extra,
  });
  const { port } = await p.start();
  cleanups.push(async () => void (await p.stop(200, 200)));
  return { p, port, primary: primary! };
}

/** `halfOpen`: the client's side stays open after the proxy ends its own, as a peer that never closes. */
async function opened(port: number, halfOpen = false): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: halfOpen });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  cleanups.push(async () => void socket.destroy());
  return socket;
}

/** Resolves true once the peer closed `socket`, false after `ms`. */
function closedWithin(socket: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.readableEnded || socket.destroyed) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    socket.resume();
    const done = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    socket.once('end', done);
    socket.once('close', done);
  });
}

function ask(socket: Socket, text: string, until: RegExp): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const timer = setTimeout(() => resolve(got), 5000);
    const onData = (d: Buffer): void => {
      got += d.toString('latin1');
      if (until.test(got)) {
        clearTimeout(timer);
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.write(text);
  });
}

describe(
  'memshift proxy: slow, silent, refused and broken clients cost only themselves',
  { timeout: 120_000 },
  () => {
    it('20 clients closed for a protocol error, never closing their side, leave room for the next with --max-connections 20', async () => {
      const { p, port } = await startProxy({ listen: { maxConnections: 20 } });
      const bad: Socket[] = [];
      for (let i = 0; i < 20; i++) {
        const s = await opened(port, true);
        s.write('GET / HTTP/1.0\r\n');
        bad.push(s);
      }
      for (let i = 0; i < 100 && p.status().connections.open > 0; i++) await sleep(20);
      assert.equal(p.status().connections.open, 0, 'every refused client is gone from the proxy');
      const good = await opened(port);
      assert.equal(await ask(good, 'set a 0 0 1\r\n1\r\n', /\r\n$/), 'STORED\r\n');
      assert.equal(p.status().connections.rejected, 0);
    });

    it('a stop ends within its grace even after a refusal whose peer never closes', async () => {
      const [primary, secondary] = await Promise.all([server(), server()]);
      const p = new Proxy({
        mode: 'shadow',
        primary: parsePoolSpec(primary!.address, 'ketama'),
        secondary: parsePoolSpec(secondary!.address, 'ketama'),
        listen: { maxConnections: 1 },
      });
      const { port } = await p.start();
      const kept = await opened(port);
      assert.equal(await ask(kept, 'set a 0 0 1\r\n1\r\n', /\r\n$/), 'STORED\r\n');
      await opened(port, true);
      for (let i = 0; i < 100 && p.status().connections.rejected < 1; i++) await sleep(20);
      assert.equal(p.status().connections.rejected, 1);
      const started = Date.now();
      const stopped = await Promise.race([p.stop(300, 100).then(() => true), sleep(5000).then(() => false)]);
      assert.ok(stopped, `stop still running after ${Date.now() - started} ms`);
    });

    it('a request left incomplete closes its connection after the partial-request timeout; others carry on', async () => {
      const { p, port } = await startProxy({ partialTimeoutMs: 300 });
      // One value that fits (buffered while it comes), one over the item size (swallowed while it comes).
      const stuck = await opened(port);
      stuck.write(`set big 0 0 ${1000 * 1000}\r\nonly ten b`);
      const huge = await opened(port);
      huge.write(`set big 0 0 ${1024 * 1024}\r\nonly ten b`);
      const other = await opened(port);
      // A slow but steady client: its requests complete, so its clock never runs out.
      for (let i = 0; i < 5; i++) {
        other.write('set s 0 0 4\r\nab');
        // Spreads the other client's value over time, as a slow but steady client sends it.
        await sleep(100);
        assert.equal(await ask(other, 'cd\r\n', /\r\n$/), 'STORED\r\n');
      }
      assert.ok(await closedWithin(stuck, 3000), 'the incomplete request timed out');
      assert.ok(await closedWithin(huge, 3000), 'the incomplete refused request timed out');
      assert.equal(p.status().proxy.partialTimeouts, 2);
      assert.equal(await ask(other, 'get s\r\n', /END\r\n$/), 'VALUE s 0 4\r\nabcd\r\nEND\r\n');
    });

    it('a client that never reads its replies to pipelined large gets costs other clients nothing, memory stays bounded', async () => {
      const { p, port, primary } = await startProxy({ timeoutMs: 2000 });
      const value = Buffer.alloc(1000 * 1000, 0x62);
      const direct = new MemcachedClient(primary.address);
      cleanups.push(async () => direct.destroy());
      assert.equal(await direct.set('big', value), 'STORED');
      const rssBefore = process.memoryUsage().rss;
      let rssPeak = rssBefore;
      const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 20);
      // 1,500 gets of a 1 MB value in one write, and not one byte read back.
      const silent = await opened(port);
      silent.pause();
      silent.write('get big\r\n'.repeat(1500));
      let errors = 0;
      let answered = 0;
      await Promise.all(
        Array.from({ length: 8 }, async (_, c) => {
          const client = new MemcachedClient(`127.0.0.1:${port}`, { requestTimeoutMs: 5000 });
          cleanups.push(async () => client.destroy());
          for (let i = 0; i < 100; i++) {
            const key = `n:${c}:${i}`;
            try {
              if ((await client.set(key, `v${i}`)) !== 'STORED') errors++;
              if ((await client.get(key))?.value.toString() !== `v${i}`) errors++;
              answered++;
            } catch {
              errors++;
            }
          }
        }),
      );
      // Lets the RSS sampler take a few more readings after the last answer.
      await sleep(300);
      clearInterval(sampler);
      assert.equal(errors, 0);
      assert.equal(answered, 800);
      assert.equal(p.status().proxy.primaryErrors, 0);
      const grown = (rssPeak - rssBefore) / 1024 / 1024;
      assert.ok(grown < 200, `proxy memory grew ${grown.toFixed(0)} MB for one silent client`);
      silent.destroy();
    });

    it('a request that times out fails alone: a later one on the same server connection is answered', async () => {
      const { p, port, primary } = await startProxy({ timeoutMs: 3000 });
      const first = await opened(port);
      const second = await opened(port);
      assert.equal(await ask(first, 'set t 0 0 1\r\n1\r\n', /\r\n$/), 'STORED\r\n');
      primary.process.kill('SIGSTOP');
      cleanups.push(async () => void primary.process.kill('SIGCONT'));
      const late = ask(first, 'get t\r\n', /\r\n$/);
      await sleep(1500);
      // Sent 1.5 s later: when the first one's deadline passes, this one still has 1.5 s to go, and
      // the server is let go only once the first has failed (wide margins for a loaded machine).
      const inTime = ask(second, 'get t\r\n', /END\r\n$/);
      assert.match(await late, /^SERVER_ERROR .*no reply within 3000 ms\r\n$/);
      primary.process.kill('SIGCONT');
      assert.equal(await inTime, 'VALUE t 0 1\r\n1\r\nEND\r\n');
      // The late reply to the first request was read and dropped: the stream is still in step.
      assert.equal(await ask(first, 'get t\r\n', /END\r\n$/), 'VALUE t 0 1\r\n1\r\nEND\r\n');
      assert.equal(p.status().proxy.primaryErrors, 1);
    });
  },
);
