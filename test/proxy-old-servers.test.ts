/**
 * memshift proxy in front of servers older than the meta protocol
 * (memcached 1.4, faked in process: a real one cannot be had here): every
 * text command works, a meta command gets the old server's ERROR, and the
 * proxy itself never sends a command such a server does not know.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { connect, type Socket } from 'node:net';
import { Proxy, type ProxyMode } from '../src/jobs/proxy.js';
import { parsePoolSpec } from '../src/topology/pool.js';
import { startMemcached } from './support/memcached.js';
import { startMemcached14 } from './support/memcached-14.js';

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

describe('memshift proxy in front of memcached 1.4', { timeout: 60_000 }, () => {
  for (const mode of ['shadow', 'dual'] as const satisfies readonly ProxyMode[]) {
    it(`${mode}: text commands answered, meta ones get ERROR, nothing unknown sent`, async () => {
      const old = await startMemcached14();
      cleanups.push(() => old.close());
      let secondaryAddress: string;
      if (mode === 'dual') {
        const other = await startMemcached14();
        cleanups.push(() => other.close());
        secondaryAddress = other.address;
      } else {
        const fresh = await startMemcached();
        cleanups.push(() => fresh.stop());
        secondaryAddress = fresh.address;
      }
      const p = new Proxy({
        mode,
        primary: parsePoolSpec(old.address, 'ketama'),
        secondary: parsePoolSpec(secondaryAddress, 'ketama'),
        timeoutMs: 1000,
      });
      const { port } = await p.start();
      cleanups.push(async () => void (await p.stop(300, 300)));
      const socket = connect({ host: '127.0.0.1', port });
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      cleanups.push(async () => void socket.destroy());
      assert.equal(await ask(socket, 'set a 5 0 2\r\nhi\r\n', /\r\n$/), 'STORED\r\n');
      assert.equal(await ask(socket, 'append a 0 0 1\r\n!\r\n', /\r\n$/), 'STORED\r\n');
      assert.equal(await ask(socket, 'set n 0 0 1 noreply\r\n1\r\nincr n 4\r\n', /\r\n$/), '5\r\n');
      assert.equal(
        await ask(socket, 'get a n missing\r\n', /END\r\n$/),
        'VALUE a 5 3\r\nhi!\r\nVALUE n 0 1\r\n5\r\nEND\r\n',
      );
      assert.match(await ask(socket, 'gets a\r\n', /END\r\n$/), /^VALUE a 5 3 \d+\r\nhi!\r\nEND\r\n$/);
      assert.equal(await ask(socket, 'foo bar\r\nmg a v\r\nmn\r\n', /MN\r\n$/), 'ERROR\r\nERROR\r\nMN\r\n');
      assert.equal(await ask(socket, 'delete a\r\nget a\r\n', /END\r\n$/), 'DELETED\r\nEND\r\n');
      assert.equal(await ask(socket, 'version\r\n', /\r\n$/), 'VERSION 1.4.25\r\n');
      assert.equal(p.status().proxy.primaryErrors, 0);
      // What reached the old server: the client's text commands and its own meta line, nothing the proxy made up.
      assert.ok(!old.lines.some((l) => l.startsWith('foo') || l === 'mn'), old.lines.join(' | '));
      assert.ok(old.lines.includes('mg a v'));
    });
  }
});
