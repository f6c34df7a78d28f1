/**
 * memshift proxy end to end: real memcached servers on loopback, real clients
 * (memccapable, memcslap, the npm memcached and memjs clients, raw sockets),
 * every mode, a secondary stopped and killed under load, bad clients.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import Memcached from 'memcached';
import memjs from 'memjs';
import { Proxy, type ProxyMode, type ProxyOptions } from '../src/jobs/proxy.js';
import { MemcachedClient } from '../src/net/client.js';
import { parsePoolSpec, type Pool } from '../src/topology/pool.js';
import { freePort, startMemcached, type MemcachedServer } from './support/memcached.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const f of cleanups.reverse()) await f().catch(() => undefined);
});

async function servers(n: number, args: string[] = []): Promise<MemcachedServer[]> {
  const list = await Promise.all(Array.from({ length: n }, () => startMemcached({ args })));
  for (const s of list) cleanups.push(() => s.stop());
  return list;
}

function pool(list: MemcachedServer[]): Pool {
  return parsePoolSpec(list.map((s) => s.address).join(','), 'ketama');
}

async function proxy(
  mode: ProxyMode,
  primary: MemcachedServer[],
  secondary: MemcachedServer[],
  extra: Partial<ProxyOptions> = {},
): Promise<{ p: Proxy; port: number }> {
  const p = new Proxy({ mode, primary: pool(primary), secondary: pool(secondary), ...extra });
  const { port } = await p.start();
  cleanups.push(async () => void (await p.stop(500, 500)));
  return { p, port };
}

function client(list: MemcachedServer[]): MemcachedClient[] {
  const out = list.map((s) => new MemcachedClient(s.address, { requestTimeoutMs: 2000 }));
  cleanups.push(async () => out.forEach((c) => c.destroy()));
  return out;
}

/** Runs a tool to its end (bounded by a kill after 60 s); resolves with its exit code. */
function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'ignore'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code ?? -1);
    });
  });
}

async function opened(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  cleanups.push(async () => void socket.destroy());
  return socket;
}

/** Writes `text` and collects replies until they match `until` (or the socket closes, or 10 s). */
async function converse(socket: Socket, text: string | Buffer, until: RegExp): Promise<string> {
  let got = '';
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', done);
      resolve(got);
    };
    const onData = (chunk: Buffer): void => {
      got += chunk.toString('latin1');
      if (until.test(got)) done();
    };
    const timer = setTimeout(done, 10_000);
    socket.on('data', onData);
    socket.once('close', done);
    if (text.length > 0) socket.write(text);
  });
}

function call<T>(f: (cb: (err: unknown, r: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => f((err, r) => (err ? reject(err as Error) : resolve(r))));
}

describe('memshift proxy', { timeout: 300_000 }, () => {
  it('memccapable passes in text and binary mode through every mode, as it does against memcached', async () => {
    const [direct] = await servers(1);
    assert.equal(await run('memccapable', ['-h', '127.0.0.1', '-p', String(direct!.port), '-t', '3']), 0);
    for (const mode of ['shadow', 'warm', 'dual'] as const) {
      const [a, b] = await servers(2);
      const { port } = await proxy(mode, [a!], [b!]);
      assert.equal(
        await run('memccapable', ['-h', '127.0.0.1', '-p', String(port), '-a', '-t', '3']),
        0,
        mode,
      );
      assert.equal(
        await run('memccapable', ['-h', '127.0.0.1', '-p', String(port), '-b', '-t', '3']),
        0,
        mode,
      );
    }
  });

  it('the npm memcached client: multi-gets split over three servers and merged in order', async () => {
    const old = await servers(3);
    const fresh = await servers(1);
    const { port } = await proxy('shadow', old, fresh);
    const c = new Memcached(`127.0.0.1:${port}`, { retries: 0 });
    const keys = Array.from({ length: 40 }, (_, i) => `key:${i}`);
    for (const k of keys) assert.equal(await call<boolean>((cb) => c.set(k, `v-${k}`, 0, cb)), true);
    assert.equal(await call<boolean>((cb) => c.add(keys[0]!, 'x', 0, cb)).catch(() => false), false);
    assert.equal(await call<number | boolean>((cb) => c.incr('absent-counter', 1, cb)), false);
    const many = await call<Record<string, string>>((cb) => c.getMulti([...keys, 'missing'], cb));
    assert.deepEqual(Object.keys(many).sort(), [...keys].sort());
    for (const k of keys) assert.equal(many[k], `v-${k}`);
    c.end();
    // Each key landed on the old server the pool's distribution names.
    const direct = client(old);
    const p = pool(old);
    for (const k of keys) {
      const owner = p.distribution.serverFor(Buffer.from(k));
      assert.equal((await direct[owner]!.get(k))?.value.toString(), `v-${k}`);
    }
    // A raw multi-get keeps the asked order, duplicates included.
    const socket = await opened(port);
    const reply = await converse(socket, 'get key:3 nope key:1 key:3\r\n', /END\r\n$/);
    assert.deepEqual(
      [...reply.matchAll(/VALUE (\S+)/g)].map((m) => m[1]),
      ['key:3', 'key:1', 'key:3'],
    );
  });

  it('memjs over the binary protocol', async () => {
    const old = await servers(2);
    const fresh = await servers(1);
    const { port } = await proxy('shadow', old, fresh);
    const c = memjs.Client.create(`127.0.0.1:${port}`, { retries: 0, logger: { log() {} } });
    await c.set('b1', 'one', { expires: 0 });
    assert.equal(await c.add('b1', 'two', { expires: 0 }), false);
    assert.equal(await c.replace('absent', 'x', { expires: 0 }), false);
    await c.increment('ctr', 4, { initial: 10 });
    const inc = await c.increment('ctr', 4, {});
    assert.equal(inc.value, 14);
    assert.equal((await c.get('b1')).value?.toString(), 'one');
    assert.equal((await c.get('absent')).value, null);
    assert.equal(await c.delete('b1'), true);
    assert.equal((await c.get('b1')).value, null);
    c.close();
  });

  for (const binary of [false, true]) {
    it(`memcslap${binary ? ' --binary' : ''} runs through the proxy without errors`, async () => {
      const old = await servers(2);
      const fresh = await servers(1);
      const { p, port } = await proxy('shadow', old, fresh);
      const s = `127.0.0.1:${port}`;
      const flags = binary ? ['--binary'] : [];
      assert.equal(await run('memcslap', ['-s', s, ...flags, '-t', 'set', '-e', '2000', '-q']), 0);
      assert.equal(await run('memcslap', ['-s', s, ...flags, '-t', 'get', '-e', '2000', '-q']), 0);
      assert.equal(await run('memcslap', ['-s', s, ...flags, '-t', 'mget', '-e', '200', '-q']), 0);
      const status = p.status();
      assert.equal(status.proxy.primaryErrors, 0);
      assert.equal(status.proxy.protocolErrors, 0);
      assert.ok(status.proxy.requests >= 4000, `requests: ${status.proxy.requests}`);
    });
  }

  it('shadow: the new pool matches the old for every mutated key', async () => {
    const old = await servers(2);
    const fresh = await servers(3);
    const { p, port } = await proxy('shadow', old, fresh);
    const socket = await opened(port);
    let script = '';
    const touched = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const k = `s:${i % 120}`;
      touched.add(k);
      switch (i % 6) {
        case 0:
          script += `set ${k} 3 0 ${String(i).length}\r\n${i}\r\n`;
          break;
        case 1:
          script += `set ${k} 1 0 2 noreply\r\nnr\r\n`;
          break;
        case 2:
          script += `append ${k} 0 0 1\r\n+\r\n`;
          break;
        case 3:
          script += `delete ${k}\r\n`;
          break;
        case 4:
          script += `ms ${k} 2 q T0 F7\r\nmq\r\n`;
          break;
        default:
          script += `add ${k} 0 0 1\r\na\r\n`;
      }
    }
    script += 'mn\r\n';
    await converse(socket, script, /MN\r\n$/);
    assert.ok(await p.drain(10_000), 'shadow queues drained');
    const from = client(old);
    const to = client(fresh);
    const oldPool = pool(old);
    const newPool = pool(fresh);
    for (const k of touched) {
      const key = Buffer.from(k);
      const a = await from[oldPool.distribution.serverFor(key)]!.get(key);
      const b = await to[newPool.distribution.serverFor(key)]!.get(key);
      assert.equal(b?.value.toString(), a?.value.toString(), k);
      assert.equal(b?.flags, a?.flags, k);
    }
    const status = p.status();
    assert.equal(status.replay?.dropped, 0);
    assert.ok((status.replay?.applied ?? 0) > 0);
  });

  it('warm: a miss is read from the old pool with its TTL and added; a deleted key never comes back', async () => {
    const old = await servers(1);
    const fresh = await servers(2);
    const [oldClient] = client(old);
    await oldClient!.set('w1', 'from-old', { flags: 9, exptime: 600 });
    await oldClient!.set('w2', 'doomed', { exptime: 600 });
    const { p, port } = await proxy('warm', fresh, old);
    const socket = await opened(port);
    assert.equal(await converse(socket, 'get w1\r\n', /END\r\n$/), 'VALUE w1 9 8\r\nfrom-old\r\nEND\r\n');
    const newPool = pool(fresh);
    const to = client(fresh);
    const filled = await to[newPool.distribution.serverFor(Buffer.from('w1'))]!.mg('w1', ['v', 't']);
    assert.equal(filled.value?.toString(), 'from-old');
    const ttl = Number(filled.flags.find((f) => f.startsWith('t'))!.slice(1));
    assert.ok(ttl > 500 && ttl <= 600, `ttl ${ttl}`);
    // Delete goes to both pools: the old one can never feed the value back.
    assert.equal(await converse(socket, 'delete w2\r\n', /\r\n$/), 'NOT_FOUND\r\n');
    assert.equal(await oldClient!.get('w2'), undefined);
    assert.equal(await converse(socket, 'get w2\r\n', /END\r\n$/), 'END\r\n');
    assert.equal(await converse(socket, 'mg w2 v\r\n', /\r\n$/), 'EN\r\n');
    // Writes go to the new pool only.
    await converse(socket, 'set w3 0 0 1\r\nx\r\n', /STORED\r\n$/);
    assert.equal(await oldClient!.get('w3'), undefined);
    // The meta path fills too, answering every flag the client asked for.
    await oldClient!.set('w4', 'meta', { flags: 4, exptime: 300 });
    assert.match(await converse(socket, 'mg w4 v f k\r\n', /meta\r\n$/), /^VA 4 f4 kw4\r\nmeta\r\n$/);
    assert.equal(p.status().proxy.warmHits, 2);
  });

  it('dual: conditional writes reach the secondary as the primary applied them', async () => {
    const [a] = await servers(1);
    const [b] = await servers(1);
    const [other] = client([b!]);
    // The secondary starts with a different CAS history, so its uniques never match the primary's.
    await other!.set('c1', 'stale');
    await other!.set('c1', 'stale');
    const { port } = await proxy('dual', [a!], [b!]);
    const socket = await opened(port);
    await converse(socket, 'set c1 0 0 2\r\nv1\r\n', /STORED\r\n$/);
    const gets = await converse(socket, 'gets c1\r\n', /END\r\n$/);
    const unique = /VALUE c1 0 2 (\d+)/.exec(gets)?.[1];
    assert.ok(unique, gets);
    assert.equal(await converse(socket, `cas c1 5 0 2 ${unique}\r\nv2\r\n`, /\r\n$/), 'STORED\r\n');
    assert.equal(await converse(socket, 'add c2 0 0 2\r\nn1\r\n', /\r\n$/), 'STORED\r\n');
    assert.equal(await converse(socket, 'add c2 0 0 2\r\nn2\r\n', /\r\n$/), 'NOT_STORED\r\n');
    const meta = await converse(socket, 'mg c1 c\r\n', /\r\n$/);
    const metaCas = /c(\d+)/.exec(meta)?.[1];
    assert.equal(await converse(socket, `ms c1 2 C${metaCas} F6\r\nv3\r\n`, /\r\n$/), 'HD\r\n');
    assert.equal(await converse(socket, 'ms c1 2 C1\r\nxx\r\n', /\r\n$/), 'EX\r\n');
    const c1 = await other!.get('c1');
    assert.equal(c1?.value.toString(), 'v3');
    assert.equal(c1?.flags, 6);
    assert.equal((await other!.get('c2'))?.value.toString(), 'n1');
    assert.equal(await converse(socket, 'md c2 C1\r\n', /\r\n$/), 'EX\r\n');
    assert.equal(await other!.get('c2'), undefined, 'a delete always reaches the secondary');
  });

  it('dual: keys a stalled secondary missed are deleted there once it is back', async () => {
    const [a] = await servers(1);
    const [b] = await servers(1);
    const { p, port } = await proxy('dual', [a!], [b!], { secondaryTimeoutMs: 100, secondaryBackoffMs: 200 });
    const socket = await opened(port);
    await converse(socket, 'set d1 0 0 2\r\nv0\r\n', /STORED\r\n$/);
    b!.process.kill('SIGSTOP');
    cleanups.push(async () => void b!.process.kill('SIGCONT'));
    assert.equal(await converse(socket, 'set d1 0 0 2\r\nv1\r\n', /\r\n$/), 'STORED\r\n');
    assert.equal(await converse(socket, 'set d1 0 0 2\r\nv2\r\n', /\r\n$/), 'STORED\r\n');
    // The client had the primary's answer at once; the secondary's leg gives up after its timeout.
    for (let i = 0; i < 100 && p.status().remembered === 0; i++) await sleep(20);
    assert.equal(p.status().remembered, 1);
    b!.process.kill('SIGCONT');
    for (let i = 0; i < 200 && p.status().remembered > 0; i++) await sleep(50);
    assert.equal(p.status().remembered, 0);
    assert.equal(p.status().invalidated, 1);
    const [direct] = client([b!]);
    assert.equal(await direct!.get('d1'), undefined);
  });

  for (const mode of ['shadow', 'dual'] as const) {
    it(`${mode}: a secondary stopped, then killed, mid-load costs clients nothing`, async () => {
      const old = await servers(1);
      const [fresh] = await servers(1);
      const { p, port } = await proxy(mode, old, [fresh!], { secondaryTimeoutMs: 100 });
      const c = new MemcachedClient(`127.0.0.1:${port}`, { requestTimeoutMs: 5000 });
      cleanups.push(async () => c.destroy());
      let errors = 0;
      const load = async (from: number, to: number): Promise<void> => {
        for (let i = from; i < to; i += 50) {
          const batch = [];
          for (let j = i; j < i + 50; j++) {
            batch.push(
              c.set(`l:${j}`, `v${j}`).then(
                (r) => (r === 'STORED' ? 0 : 1),
                () => 1,
              ),
            );
            batch.push(
              c.get(`l:${j}`).then(
                (r) => (r?.value.toString() === `v${j}` ? 0 : 1),
                () => 1,
              ),
            );
          }
          for (const e of await Promise.all(batch)) errors += e;
        }
      };
      await load(0, 1000);
      fresh!.process.kill('SIGSTOP');
      await load(1000, 3000);
      fresh!.process.kill('SIGKILL');
      await load(3000, 5000);
      assert.equal(errors, 0);
      const status = p.status();
      assert.equal(status.proxy.primaryErrors, 0);
      if (mode === 'shadow') assert.ok((status.replay?.dropped ?? 0) + (status.replay?.queued ?? 0) > 0);
      else assert.ok(status.proxy.secondaryFailed + status.proxy.secondarySkipped > 0);
    });
  }

  it('1 MiB values in text and binary', async () => {
    const old = await servers(1, ['-I', '2m']);
    const fresh = await servers(1, ['-I', '2m']);
    const { p, port } = await proxy('shadow', old, fresh);
    const value = Buffer.alloc(1024 * 1024, 0x61);
    value.write('head', 0);
    value.write('tail', value.length - 4);
    const socket = await opened(port);
    const stored = await converse(
      socket,
      Buffer.concat([Buffer.from(`set big 0 0 ${value.length}\r\n`), value, Buffer.from('\r\n')]),
      /\r\n$/,
    );
    assert.equal(stored, 'STORED\r\n');
    const got = await converse(socket, 'get big\r\n', /END\r\n$/);
    assert.equal(got.length, `VALUE big 0 ${value.length}\r\n`.length + value.length + 2 + 5);
    assert.ok(got.includes('head') && got.endsWith('tail\r\nEND\r\n'));
    const mj = memjs.Client.create(`127.0.0.1:${port}`, { retries: 0, logger: { log() {} } });
    await mj.set('bigb', value, { expires: 0 });
    assert.ok((await mj.get('bigb')).value?.equals(value));
    mj.close();
    assert.ok(await p.drain(10_000));
    const [to] = client(fresh);
    assert.ok((await to!.get('big'))?.value.equals(value));
  });

  it('a client that disconnects mid-value leaves nothing behind and others carry on', async () => {
    const old = await servers(1);
    const fresh = await servers(1);
    const { p, port } = await proxy('shadow', old, fresh);
    const quitter = await opened(port);
    quitter.write('set half 0 0 100\r\nonly-some-bytes');
    await sleep(50);
    quitter.destroy();
    const other = await opened(port);
    assert.equal(await converse(other, 'set whole 0 0 2\r\nok\r\n', /\r\n$/), 'STORED\r\n');
    assert.equal(await converse(other, 'get half\r\n', /END\r\n$/), 'END\r\n');
    assert.equal(p.status().proxy.primaryErrors, 0);
  });

  it("garbage from a client gets memcached's own replies; unframeable binary closes only that connection", async () => {
    const old = await servers(1);
    const fresh = await servers(1);
    const { p, port } = await proxy('shadow', old, fresh);
    const good = await opened(port);
    await converse(good, 'set g 0 0 1\r\n1\r\n', /STORED\r\n$/);
    const bad = await opened(port);
    assert.equal(await converse(bad, '\x01\x02\xffjunk here\r\n', /\r\n$/), 'ERROR\r\n');
    // As memcached: the 3 bytes and the 2 after them are a bad chunk, the rest a line it does not know.
    const reply = await converse(bad, 'set k 0 0 3\r\nabcdefgh\r\n', /ERROR\r\n$/);
    assert.equal(reply, 'CLIENT_ERROR bad data chunk\r\nERROR\r\n');
    assert.equal(await converse(bad, 'get g\r\n', /END\r\n$/), 'VALUE g 0 1\r\n1\r\nEND\r\n');
    const binaryBad = await opened(port);
    const header = Buffer.alloc(24);
    header[0] = 0x80;
    header.writeUInt32BE(0xffffffff, 8); // a body no limit allows
    await converse(binaryBad, header, /$^/);
    assert.equal(binaryBad.readableEnded || binaryBad.destroyed, true);
    assert.equal(await converse(good, 'get g\r\n', /END\r\n$/), 'VALUE g 0 1\r\n1\r\nEND\r\n');
    assert.equal(p.status().proxy.protocolErrors, 1);
  });

  it('a dead primary gives SERVER_ERROR (text) and an error status (binary), not a hang', async () => {
    const deadPort = await freePort();
    const [fresh] = await servers(1);
    const p = new Proxy({
      mode: 'shadow',
      primary: parsePoolSpec(`127.0.0.1:${deadPort}`, 'ketama'),
      secondary: pool([fresh!]),
      timeoutMs: 300,
    });
    const { port } = await p.start();
    cleanups.push(async () => void (await p.stop(200, 200)));
    const socket = await opened(port);
    assert.match(await converse(socket, 'get x\r\n', /\r\n$/), /^SERVER_ERROR /);
    assert.match(await converse(socket, 'set x 0 0 1\r\n1\r\n', /\r\n$/), /^SERVER_ERROR /);
    const mj = memjs.Client.create(`127.0.0.1:${port}`, { retries: 0, logger: { log() {} } });
    await assert.rejects(mj.get('x'));
    mj.close();
    // A stopped primary: the request times out into SERVER_ERROR.
    const [stopped] = await servers(1);
    const q = new Proxy({
      mode: 'shadow',
      primary: pool([stopped!]),
      secondary: pool([fresh!]),
      timeoutMs: 300,
    });
    const bound = await q.start();
    cleanups.push(async () => void (await q.stop(200, 200)));
    stopped!.process.kill('SIGSTOP');
    cleanups.push(async () => void stopped!.process.kill('SIGCONT'));
    const s2 = await opened(bound.port);
    assert.match(await converse(s2, 'get y\r\n', /\r\n$/), /^SERVER_ERROR .*no reply within 300 ms/);
    stopped!.process.kill('SIGCONT');
  });

  it('connection limit, idle timeout and a graceful stop that answers what is in flight', async () => {
    const old = await servers(1);
    const fresh = await servers(1);
    const { p, port } = await proxy('shadow', old, fresh, {
      listen: { maxConnections: 1, idleTimeoutMs: 300 },
    });
    const first = await opened(port);
    await converse(first, 'set a 0 0 1\r\n1\r\n', /STORED\r\n$/);
    const second = await opened(port);
    assert.match(await converse(second, '', /\r\n$/), /^SERVER_ERROR too many open connections/);
    // Left idle, the first connection is closed by the proxy.
    await converse(first, '', /$^/);
    assert.equal(first.readableEnded || first.destroyed, true);
    assert.equal(p.status().connections.idleClosed, 1);
    // Requests in flight when the stop begins (the primary held still) are still answered.
    old[0]!.process.kill('SIGSTOP');
    cleanups.push(async () => void old[0]!.process.kill('SIGCONT'));
    const third = await opened(port);
    const before = p.status().proxy.requests;
    const replies = converse(third, 'get a\r\nget a\r\nget a\r\n', /(END\r\n){3}$/);
    for (let i = 0; i < 200 && p.status().proxy.requests < before + 3; i++) await sleep(5);
    assert.equal(p.status().proxy.requests, before + 3);
    const stopping = p.stop(5000, 500);
    await sleep(50);
    old[0]!.process.kill('SIGCONT');
    assert.equal(await replies, 'VALUE a 0 1\r\n1\r\nEND\r\n'.repeat(3));
    await stopping;
  });
});
