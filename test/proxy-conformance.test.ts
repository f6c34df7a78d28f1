/**
 * memshift proxy answers as memcached 1.6 does: fixed cases (malformed
 * storage lines, oversized values, quiet meta modes, unknown and admin
 * commands) sent byte for byte to a real memcached and through the proxy in
 * every mode, replies compared whole; and a client whose line makes
 * memcached hang up costs no other client anything.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Proxy, type ProxyMode } from '../src/jobs/proxy.js';
import { BinaryOpcode as Op, encodeBinaryRequest } from '../src/protocol/binary.js';
import { MemcachedClient } from '../src/net/client.js';
import { parsePoolSpec } from '../src/topology/pool.js';
import { exchange, show } from './support/differential.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';
import { DIFFERENT_COMMANDS, PROXY_DIFFERENCES } from './support/proxy-differences.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const f of cleanups.reverse()) await f().catch(() => undefined);
});

async function server(): Promise<MemcachedServer> {
  const s = await startMemcached();
  cleanups.push(() => s.stop());
  return s;
}

async function proxyFor(
  mode: ProxyMode,
  primary: MemcachedServer,
  secondary: MemcachedServer,
): Promise<number> {
  return (await startProxy(mode, primary, secondary)).port;
}

async function startProxy(
  mode: ProxyMode,
  primary: MemcachedServer,
  secondary: MemcachedServer,
): Promise<{ p: Proxy; port: number }> {
  const p = new Proxy({
    mode,
    primary: parsePoolSpec(primary.address, 'ketama'),
    secondary: parsePoolSpec(secondary.address, 'ketama'),
  });
  const { port } = await p.start();
  cleanups.push(async () => void (await p.stop(500, 500)));
  return { p, port };
}

const b = (text: string): Buffer => Buffer.from(text, 'latin1');
const LONG_KEY = 'k'.repeat(251);
const MIB = 1024 * 1024;
const tooLarge = (head: string): Buffer => Buffer.concat([b(head), Buffer.alloc(MIB, 0x61), b('\r\n')]);

/** Each case runs on its own connection, in this order, against both sides. */
/** `differs`: a well-formed command of the differences table, checked against the table. */
const CASES: ReadonlyArray<{ name: string; bytes: Buffer; differs?: boolean }> = [
  { name: 'set with too few words', bytes: b('set k 0 0\r\n') },
  { name: 'set with too many words', bytes: b('set k 0 0 1 noreply extra\r\nx\r\n') },
  { name: 'negative length: no swallow, the data is a command', bytes: b('set k 0 0 -1\r\nabc\r\n') },
  { name: 'key over 250 bytes', bytes: b(`set ${LONG_KEY} 0 0 5\r\nhello\r\n`) },
  { name: 'key over 250 bytes, noreply', bytes: b(`set ${LONG_KEY} 0 0 5 noreply\r\nhello\r\n`) },
  { name: 'bad data chunk', bytes: b('set k 0 0 3\r\nabcde\r\nget k\r\n') },
  { name: 'bad data chunk, noreply', bytes: b('set k 0 0 3 noreply\r\nabcde\r\n') },
  { name: 'C number rules', bytes: b('set n +1 0 4294967297\r\nx\r\nset n2 0 0 01\r\ny\r\nget n n2\r\n') },
  {
    name: 'a stored value to keep',
    bytes: b('set big 0 0 3\r\nold\r\nset kept 0 0 3\r\nold\r\nget big kept\r\n'),
  },
  {
    name: 'over the item size: refused, swallowed, old value removed (set)',
    bytes: Buffer.concat([tooLarge(`set big 0 0 ${MIB}\r\n`), b('get big\r\n')]),
  },
  {
    name: 'over the item size: add keeps the old value',
    bytes: Buffer.concat([tooLarge(`add kept 0 0 ${MIB}\r\n`), b('get kept\r\n')]),
  },
  {
    name: 'ms over the item size removes the old value',
    bytes: Buffer.concat([
      b('set kept 0 0 1\r\nx\r\n'),
      tooLarge(`ms kept ${MIB} T0\r\n`),
      b('mg kept v\r\n'),
    ]),
  },
  { name: 'ms without key', bytes: b('ms\r\n') },
  { name: 'ms without length', bytes: b('ms k\r\n') },
  { name: 'ms bad mode swallows', bytes: b('ms k 2 MX\r\nab\r\nmg k v\r\n') },
  { name: 'ms bad chunk', bytes: b('ms k 2 q\r\nabcd\r\n') },
  { name: 'ms quiet', bytes: b('ms q1 2 q\r\nab\r\nmg q1 v q\r\nmg nothere v q\r\n') },
  { name: 'md nokey q still says NF', bytes: b('md nokey q\r\nmd q1 q\r\n') },
  {
    name: 'ma q hides success only',
    bytes: b('set cnt 0 0 1\r\n5\r\nma cnt q\r\nma cnt q v\r\nma nokey q\r\nmg cnt v\r\n'),
  },
  {
    name: 'meta flag errors',
    bytes: b('mg k zz\r\nmg k v v\r\nmg k T\r\nmd k Zz\r\nma k MX\r\nmg\r\nme\r\n'),
  },
  // First on its connection: memcached drops the unsent replies before such a get (see PROXY_DIFFERENCES).
  { name: 'get with a key over 250 bytes', bytes: b(`get kept ${LONG_KEY}\r\nget kept\r\n`) },
  { name: 'get errors', bytes: b('get\r\ngat 10\r\ngat x k\r\nbget kept\r\n') },
  {
    name: 'arithmetic, touch, delete errors',
    bytes: b(
      'incr k x\r\nincr k noreply\r\ntouch k x\r\ndelete k 5\r\ndelete k 5 noreply\r\ndelete k 0\r\ndecr\r\n',
    ),
  },
  {
    name: 'flush_all forms',
    bytes: b('flush_all x\r\nflush_all x noreply\r\nflush_all 0\r\nflush_all noreply\r\n'),
  },
  { name: 'unknown and short lines', bytes: b('foo\r\n\r\nx\r\ngetx k\r\nsetx k\r\n') },
  {
    name: 'admin commands malformed',
    bytes: b('slabs foo\r\ncache_memlimit 5\r\ncache_memlimit x\r\nlru\r\nlru_crawler foo\r\nextstore\r\n'),
  },
  {
    name: 'verbosity and shutdown',
    bytes: b('verbosity 1\r\nverbosity\r\nverbosity x\r\nshutdown\r\nversion\r\n'),
  },
  { name: 'an embedded NUL ends the line', bytes: b('get kept\0 ignored\r\n') },
  { name: 'an HTTP request line closes the connection', bytes: b('GET / HTTP/1.0\r\n') },
  { name: 'well-formed admin command', bytes: b('cache_memlimit 300\r\n'), differs: true },
  { name: 'stats: the proxy’s own figures', bytes: b('stats\r\n'), differs: true },
];

const bin = (opcode: number, key: string, value: Buffer = Buffer.alloc(0), withFlags = false): Buffer =>
  Buffer.concat(
    encodeBinaryRequest({
      opcode,
      opaque: 0x01020304,
      key: Buffer.from(key, 'latin1'),
      value,
      extras: withFlags ? Buffer.from([0, 0, 0, 7, 0, 0, 0, 0]) : Buffer.alloc(0),
    }),
  );

/** Binary cases: each is its own connection (the protocol is picked by the first byte). */
const BINARY_CASES: ReadonlyArray<{ name: string; bytes: Buffer }> = [
  {
    name: 'binary: a stored value',
    bytes: Buffer.concat([bin(Op.Set, 'bk', b('old'), true), bin(Op.Get, 'bk')]),
  },
  {
    name: 'binary: a set over the item size is refused (status 3), swallowed, the old value removed',
    bytes: Buffer.concat([
      bin(Op.Set, 'bk', Buffer.alloc(MIB, 0x61), true),
      bin(Op.Get, 'bk'),
      bin(Op.Noop, ''),
    ]),
  },
  {
    name: 'binary: a quiet add over the item size still answers',
    bytes: Buffer.concat([bin(Op.AddQ, 'bq', Buffer.alloc(MIB, 0x61), true), bin(Op.Noop, '')]),
  },
  { name: 'binary: a key over 250 bytes gets status 4 and a hang-up', bytes: bin(Op.Get, LONG_KEY) },
];

function commandOf(bytes: Buffer): string {
  return bytes.toString('latin1', 0, Math.min(bytes.length, 64)).split(/[ \r\n]/)[0] ?? '';
}

describe('memshift proxy answers as memcached does', { timeout: 120_000 }, () => {
  for (const mode of ['shadow', 'warm', 'dual'] as const) {
    it(`fixed cases, byte for byte, in ${mode} mode`, async () => {
      const direct = await server();
      const [primary, secondary] = await Promise.all([server(), server()]);
      const port = await proxyFor(mode, primary, secondary);
      for (const c of CASES) {
        const want = await exchange(direct.port, [c.bytes]);
        const got = await exchange(port, [c.bytes]);
        const command = commandOf(c.bytes);
        if (c.differs) {
          assert.ok(DIFFERENT_COMMANDS.has(command), command);
          const rule = PROXY_DIFFERENCES.find((d) => d.command === command)!;
          assert.match(got.reply.toString('latin1'), rule.proxy, `${mode}: ${c.name}`);
          continue;
        }
        assert.equal(show(got.reply), show(want.reply), `${mode}: ${c.name}`);
        assert.equal(got.closed, want.closed, `${mode}: ${c.name}: connection closed`);
      }
      for (const c of BINARY_CASES) {
        const want = await exchangeRaw(direct.port, c.bytes);
        const got = await exchangeRaw(port, c.bytes);
        assert.equal(show(got.reply), show(want.reply), `${mode}: ${c.name}`);
        assert.equal(got.closed, want.closed, `${mode}: ${c.name}: connection closed`);
      }
      // The refused admin command changed nothing on the server behind the proxy.
      const behind = new MemcachedClient(primary.address);
      cleanups.push(async () => behind.destroy());
      const settings = await behind.stats(['settings']);
      assert.equal(settings.get('maxbytes'), String(64 * MIB));
    });
  }

  it('a client sending an HTTP request costs a pipelining client nothing', async () => {
    const [primary, secondary] = await Promise.all([server(), server()]);
    const { p, port } = await startProxy('shadow', primary!, secondary!);
    const setup = await exchange(port, [b('set h 0 0 2\r\nhi\r\n')]);
    assert.equal(setup.reply.toString('latin1'), 'STORED\r\n');
    const expected = 'VALUE h 0 2\r\nhi\r\nEND\r\n'.repeat(200);
    const good = await opened(port);
    const bad = await opened(port);
    const replies = readUntil(good, expected.length);
    // The server holds still while both clients' requests reach the shared connection: the
    // HTTP line (which makes memcached hang up) first, then the 200 gets behind it.
    primary!.process.kill('SIGSTOP');
    cleanups.push(async () => void primary!.process.kill('SIGCONT'));
    const badClosed = new Promise<string>((resolve) => {
      let got = '';
      const timer = setTimeout(() => resolve(got + '(still open)'), 5000);
      bad.on('data', (d: Buffer) => (got += d.toString('latin1')));
      bad.once('close', () => {
        clearTimeout(timer);
        resolve(got);
      });
    });
    const before = p.status().proxy.requests;
    bad.write('GET / HTTP/1.0\r\n\r\n');
    for (let i = 0; i < 200 && p.status().proxy.requests < before + 1; i++) await sleep(5);
    good.write(b('get h\r\n'.repeat(200)));
    for (let i = 0; i < 200 && p.status().proxy.requests < before + 201; i++) await sleep(5);
    primary!.process.kill('SIGCONT');
    assert.equal(await replies, expected);
    assert.equal(await badClosed, '', 'memcached hangs up on HTTP without a reply');
    assert.equal(p.status().proxy.primaryErrors, 0);
  });
});

/** Binary bytes and whatever comes back within a moment (no fence: a binary connection has no text mn). */
async function exchangeRaw(port: number, bytes: Buffer): Promise<{ reply: Buffer; closed: boolean }> {
  const socket = await opened(port);
  const chunks: Buffer[] = [];
  let closed = false;
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.once('close', () => (closed = true));
  socket.write(bytes);
  // The reply of a case has no end marker (it may be nothing, or a hang-up): both sides are read
  // for the same window, long against loopback answers, and then compared.
  await sleep(300);
  socket.destroy();
  return { reply: Buffer.concat(chunks), closed };
}

async function opened(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => undefined);
  cleanups.push(async () => void socket.destroy());
  return socket;
}

function readUntil(socket: Socket, bytes: number): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const timer = setTimeout(() => resolve(got), 10_000);
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.length >= bytes) {
        clearTimeout(timer);
        resolve(got);
      }
    });
    socket.once('close', () => resolve(got));
  });
}
