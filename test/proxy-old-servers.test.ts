/**
 * memshift proxy in front of servers older than the meta protocol
 * (memcached 1.4, and 1.5 before 1.5.19, faked in process: a real one
 * cannot be had here), in every mode: the proxy reads each server's
 * `version` at start, every text command works, a meta command gets the old
 * server's own ERROR (its data block read as a line, as that server reads
 * it), and nothing the proxy sends on its own (fills, lookups, fences) is a
 * command such a server does not know.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { connect, type Socket } from 'node:net';
import { MemcachedClient } from '../src/net/client.js';
import { Proxy, type ProxyMode } from '../src/jobs/proxy.js';
import { parsePoolSpec } from '../src/topology/pool.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';
import { startMemcached14, type FakeServer } from './support/memcached-14.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const f of cleanups.reverse()) await f().catch(() => undefined);
});

function ask(socket: Socket, text: string, until: RegExp): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const timer = setTimeout(() => resolve(got + '(no more within 5 s)'), 5000);
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

async function poll(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    // Waits for the proxy's background work (a shadow replay) to land; bounded at 200 tries.
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.fail(`${what}: not within 5 s`);
}

async function old(version: string): Promise<FakeServer> {
  const s = await startMemcached14({ version });
  cleanups.push(() => s.close());
  return s;
}

async function current(): Promise<MemcachedServer> {
  const s = await startMemcached();
  cleanups.push(() => s.stop());
  return s;
}

async function proxy(
  mode: ProxyMode,
  primary: string,
  secondary: string,
): Promise<{ p: Proxy; socket: Socket }> {
  const p = new Proxy({
    mode,
    primary: parsePoolSpec(primary, 'ketama'),
    secondary: parsePoolSpec(secondary, 'ketama'),
    timeoutMs: 1000,
  });
  const { port } = await p.start();
  cleanups.push(async () => void (await p.stop(300, 300)));
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  cleanups.push(async () => void socket.destroy());
  return { p, socket };
}

/** A meta command line (mg, ms, mn, ...): none may reach a server before 1.5.19. */
const META_LINE = /^m[a-z](\s|$)/;

/** What every mode must answer as the old server would: meta commands are unknown commands. */
async function metaRefused(socket: Socket): Promise<void> {
  // ms's data block is one more line to an old server, so two ERRORs; mn too is unknown there.
  assert.equal(
    await ask(socket, 'mg a v\r\nms a 2\r\nhi\r\nmn\r\nfoo bar\r\nversion\r\n', /VERSION [^\r]*\r\n$/).then(
      (r) => r.replace(/VERSION [^\r]*\r\n$/, ''),
    ),
    'ERROR\r\nERROR\r\nERROR\r\nERROR\r\nERROR\r\n',
  );
}

for (const version of ['1.4.25', '1.5.10']) {
  describe(`memshift proxy in front of memcached ${version}`, { timeout: 60_000 }, () => {
    it('shadow: text commands answered by the old pool and replayed to the new one; no meta sent to the old one', async () => {
      const source = await old(version);
      const fresh = await current();
      const { p, socket } = await proxy('shadow', source.address, fresh.address);
      assert.equal(await ask(socket, 'set a 5 0 2\r\nhi\r\n', /\r\n$/), 'STORED\r\n');
      assert.equal(await ask(socket, 'append a 0 0 1\r\n!\r\n', /\r\n$/), 'STORED\r\n');
      assert.equal(await ask(socket, 'set n 0 0 1 noreply\r\n1\r\nincr n 4\r\n', /\r\n$/), '5\r\n');
      assert.equal(
        await ask(socket, 'get a n missing\r\n', /END\r\n$/),
        'VALUE a 5 3\r\nhi!\r\nVALUE n 0 1\r\n5\r\nEND\r\n',
      );
      assert.match(await ask(socket, 'gets a\r\n', /END\r\n$/), /^VALUE a 5 3 \d+\r\nhi!\r\nEND\r\n$/);
      await metaRefused(socket);
      assert.equal(await ask(socket, 'delete a\r\nget a\r\n', /END\r\n$/), 'DELETED\r\nEND\r\n');
      assert.equal(await ask(socket, 'version\r\n', /\r\n$/), `VERSION ${version}\r\n`);
      const check = new MemcachedClient(fresh.address);
      cleanups.push(async () => check.destroy());
      await poll('n replayed to the new pool', async () => (await check.get('n'))?.value.toString() === '5');
      assert.equal(await check.get('a'), undefined);
      const status = p.status();
      assert.equal(status.proxy.primaryErrors, 0);
      // The get hit on the old pool could be filled only with a TTL the old server cannot tell.
      assert.ok((status.replay?.fills.skippedBy['no_ttl_lookup'] ?? 0) > 0, JSON.stringify(status.replay));
      assert.equal(status.replay?.fills.applied, 0);
      const sent = source.lines.filter((l) => META_LINE.test(l) || l.startsWith('foo'));
      assert.deepEqual(sent, [], 'lines the old server should never have been sent');
      // The server was asked its version at start, before any client's request.
      assert.equal(source.lines[0], 'version');
    });

    it('dual: writes reach both old pools; meta commands refused; nothing unknown sent', async () => {
      const primary = await old(version);
      const secondary = await old(version);
      const { p, socket } = await proxy('dual', primary.address, secondary.address);
      assert.equal(await ask(socket, 'set a 5 0 2\r\nhi\r\n', /\r\n$/), 'STORED\r\n');
      assert.equal(await ask(socket, 'add a 0 0 1\r\nx\r\n', /\r\n$/), 'NOT_STORED\r\n');
      assert.equal(await ask(socket, 'set n 0 0 1\r\n7\r\ndecr n 2\r\n', /5\r\n$/), 'STORED\r\n5\r\n');
      await metaRefused(socket);
      assert.equal(
        await ask(socket, 'get a n\r\n', /END\r\n$/),
        'VALUE a 5 2\r\nhi\r\nVALUE n 0 1\r\n5\r\nEND\r\n',
      );
      assert.equal(secondary.items.get('a')?.value.toString(), 'hi');
      assert.equal(secondary.items.get('n')?.value.toString(), '5');
      assert.equal(await ask(socket, 'delete n\r\n', /\r\n$/), 'DELETED\r\n');
      assert.equal(secondary.items.has('n'), false);
      assert.equal(p.status().proxy.primaryErrors, 0);
      assert.equal(p.status().proxy.secondaryFailed, 0);
      for (const server of [primary, secondary]) {
        assert.deepEqual(
          server.lines.filter((l) => META_LINE.test(l) || l.startsWith('foo')),
          [],
          `${server.address} was sent lines it does not know`,
        );
      }
    });

    it('warm: a miss on the new pool is read from the old one by get, and not copied without its TTL', async () => {
      const source = await old(version);
      const fresh = await current();
      source.items.set('k', { value: Buffer.from('old value'), flags: '9', cas: 1 });
      source.items.set('gone', { value: Buffer.from('soon deleted'), flags: '0', cas: 2 });
      const { p, socket } = await proxy('warm', fresh.address, source.address);
      assert.equal(await ask(socket, 'get k nothing\r\n', /END\r\n$/), 'VALUE k 9 9\r\nold value\r\nEND\r\n');
      assert.equal(await ask(socket, 'gets k\r\n', /END\r\n$/), 'VALUE k 9 9 0\r\nold value\r\nEND\r\n');
      assert.equal(p.status().proxy.warmHits, 2);
      // The old server cannot say how long k lives: the new pool does not get a copy that could outlive it.
      const check = new MemcachedClient(fresh.address);
      cleanups.push(async () => check.destroy());
      assert.equal(await check.get('k'), undefined);
      // A delete reaches both pools; the key is then gone from both.
      assert.equal(await ask(socket, 'delete gone\r\n', /\r\n$/), 'NOT_FOUND\r\n');
      assert.equal(source.items.has('gone'), false);
      assert.equal(await ask(socket, 'get gone\r\n', /END\r\n$/), 'END\r\n');
      // Writes go to the new pool and are answered from it.
      assert.equal(
        await ask(socket, 'set w 1 0 3\r\nnew\r\nget w\r\n', /END\r\n$/),
        'STORED\r\nVALUE w 1 3\r\nnew\r\nEND\r\n',
      );
      await metaRefused(socket);
      assert.equal(p.status().proxy.primaryErrors, 0);
      const sent = source.lines.filter((l) => META_LINE.test(l) || l.startsWith('foo'));
      assert.deepEqual(sent, [], 'lines the old server should never have been sent');
      assert.ok(source.lines.includes('get k'), source.lines.join(' | '));
    });
  });
}

describe('memshift proxy in front of current memcached', { timeout: 60_000 }, () => {
  it('meta commands are carried out where every server speaks them', async () => {
    const [primary, secondary] = await Promise.all([current(), current()]);
    const { socket } = await proxy('dual', primary.address, secondary.address);
    assert.equal(
      await ask(socket, 'ms a 2 T0\r\nhi\r\nmg a v\r\nmn\r\n', /MN\r\n$/),
      'HD\r\nVA 2\r\nhi\r\nMN\r\n',
    );
  });
});
