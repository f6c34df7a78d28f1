/**
 * Operations extracted from real traffic: real memcached on loopback, real
 * tcpdump through memshift's capture pipeline, real clients (raw text and
 * meta pipelines on a socket, the npm `memcached` client, `memjs` over the
 * binary protocol, libmemcached's memcslap in both protocols).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, describe, it } from 'node:test';
import Memcached from 'memcached';
import memjs from 'memjs';
import { CapturePipeline } from '../src/capture/pipeline.js';
import { startTcpdump, type TcpdumpCapture } from '../src/capture/tcpdump.js';
import { OperationExtractor } from '../src/ops/extractor.js';
import type { Operation } from '../src/ops/operation.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

const LIVE_TIMEOUT = 120_000;

interface Live {
  readonly server: MemcachedServer;
  readonly extractor: OperationExtractor;
  readonly ops: Operation[];
  /** Stops the capture once `ready` holds (bounded wait), then the server. */
  finish(ready: () => boolean): Promise<void>;
}

const stoppers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (stoppers.length > 0) await stoppers.pop()!();
});
after(async () => {
  while (stoppers.length > 0) await stoppers.pop()!();
});

async function live(running?: MemcachedServer): Promise<Live> {
  const server = running ?? (await startMemcached());
  if (running === undefined) stoppers.push(() => server.stop());
  const ops: Operation[] = [];
  const extractor = new OperationExtractor((op) => ops.push(op));
  const pipeline = new CapturePipeline(extractor, { serverPorts: [server.port] });
  const tcpdump: TcpdumpCapture = startTcpdump({ interface: 'lo', serverPorts: [server.port] });
  stoppers.push(async () => {
    await tcpdump.stop();
  });
  tcpdump.stdout.on('data', (chunk: Buffer) => pipeline.push(chunk));
  await tcpdump.ready;
  return {
    server,
    extractor,
    ops,
    async finish(ready) {
      for (let i = 0; i < 500 && !ready(); i++) await sleep(20);
      await tcpdump.stop();
      pipeline.end();
    },
  };
}

function show(op: Operation): string {
  const parts = [op.protocol, op.command, op.key.toString('latin1'), op.outcome];
  if (op.value !== undefined) parts.push(`value=${op.value.toString('latin1')}`);
  if (op.number !== undefined) parts.push(`number=${op.number}`);
  return parts.join(' ');
}

/** Writes `text` and reads until the reply ends with `last` (bounded by the test timeout). */
async function converse(socket: Socket, text: string, last: RegExp): Promise<string> {
  let got = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      got += chunk.toString('latin1');
      if (last.test(got)) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(text);
  });
  return got;
}

async function opened(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

async function closed(socket: Socket): Promise<void> {
  const done = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.end();
  socket.resume();
  await done;
}

function run(cmd: string, args: string[]): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'ignore'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

describe('operations from live traffic', { timeout: LIVE_TIMEOUT }, () => {
  it('a raw text pipeline: failed add, cas mismatch, incr results, multi-get, noreply', async () => {
    const l = await live();
    const socket = await opened(l.server.port);
    await converse(socket, 'set a 3 0 2\r\nv1\r\nset n 0 0 2\r\n10\r\n', /STORED\r\nSTORED\r\n$/);
    const gets = await converse(socket, 'gets a\r\n', /END\r\n$/);
    const cas = BigInt(/VALUE a 3 2 (\d+)/.exec(gets)![1]!);
    const text =
      'add a 0 0 1\r\nx\r\n' +
      `cas a 0 0 2 ${cas + 1000n}\r\nzz\r\n` +
      `cas a 0 0 2 ${cas}\r\nv2\r\n` +
      'incr n 5\r\ndecr n 100\r\nincr nope 1\r\nincr a 1\r\n' +
      'get a n missing\r\n' +
      'set q 0 0 1 noreply\r\n1\r\nappend a 0 0 1\r\n!\r\ndelete a\r\ndelete a\r\ntouch n 100\r\nversion\r\n';
    await converse(socket, text, /VERSION [^\r]*\r\n$/);
    await closed(socket);
    await l.finish(() => l.extractor.flows === 0 && l.ops.length >= 17);
    assert.deepEqual(l.ops.map(show), [
      'text set a stored value=v1',
      'text set n stored value=10',
      'text get a hit value=v1',
      'text add a not_stored value=x',
      'text cas a exists value=zz',
      'text cas a stored value=v2',
      'text incr n number number=15',
      'text decr n number number=0',
      'text incr nope not_found',
      'text incr a error',
      'text get a hit value=v2',
      'text get n hit value=0 ', // memcached keeps a decremented number's length, space-padded
      'text get missing miss',
      'text set q unknown value=1',
      'text append a stored value=!',
      'text delete a deleted',
      'text delete a not_found',
      'text touch n touched',
    ]);
    const c = l.extractor.counters;
    assert.equal(c.unpairedResponses, 0);
    assert.equal(c.protocolErrors, 0);
    assert.equal(c.adminCommands, 1);
  });

  it('a raw meta pipeline with q, O and k, fenced by mn', async () => {
    const l = await live();
    const socket = await opened(l.server.port);
    const text =
      'ms m1 2 T0 F5 q O1\r\nab\r\n' + // quiet success: no reply
      'ms m1 2 ME q O2\r\nzz\r\n' + // add of an existing key: NS O2
      'ms m2 2 MR q O3\r\nzz\r\n' + // replace of a missing key: NS O3
      'mg m1 v f k q O4\r\n' + // hit: VA with key and opaque
      'mg m3 v q k O5\r\n' + // miss: nothing
      'ma cnt q O6\r\n' + // missing counter: NF O6
      'md m1 q O7\r\n' + // quiet success
      'mg m1 v q k O8\r\n' + // now a miss
      'mn\r\n';
    const reply = await converse(socket, text, /MN\r\n$/);
    assert.match(reply, /^NS O2\r\nNS O3\r\nVA 2 f5 km1 O4\r\nab\r\nNF O6\r\nMN\r\n$/);
    await closed(socket);
    await l.finish(() => l.extractor.flows === 0 && l.ops.length >= 8);
    assert.deepEqual(l.ops.map(show), [
      'meta set m1 stored value=ab',
      'meta add m1 not_stored value=zz',
      'meta replace m2 not_stored value=zz',
      'meta get m1 hit value=ab',
      'meta get m3 miss',
      'meta incr cnt not_found',
      'meta delete m1 deleted',
      'meta get m1 miss',
    ]);
    assert.equal(l.ops[3]!.flags, 5);
  });

  it('joins a connection opened before the capture and trusts it again once a reply names its key', async () => {
    const server = await startMemcached();
    stoppers.push(() => server.stop());
    const socket = await opened(server.port);
    await converse(socket, 'set pre 0 0 3\r\nold\r\n', /STORED\r\n$/);
    const l = await live(server);
    await converse(socket, 'get pre\r\n', /END\r\n$/);
    await converse(socket, 'set post 0 0 3\r\nnew\r\nadd post 0 0 1\r\nx\r\n', /NOT_STORED\r\n$/);
    await closed(socket);
    await l.finish(() => l.extractor.flows === 0 && l.ops.length >= 2);
    assert.deepEqual(l.ops.map(show), ['text set post stored value=new', 'text add post not_stored value=x']);
    const c = l.extractor.counters;
    assert.equal(c.midstreamFlows, 1);
    assert.equal(c.droppedReads, 1); // the get that proved the flow in step was itself read out of step
  });

  it('the npm memcached client (text)', async () => {
    const l = await live();
    const client = new Memcached(`127.0.0.1:${l.server.port}`, { retries: 0 });
    const call = <T>(f: (cb: (err: unknown, r: T) => void) => void): Promise<T> =>
      new Promise((resolve, reject) => f((err, r) => (err ? reject(err as Error) : resolve(r))));
    await call<boolean>((cb) => client.set('k1', 'hello', 0, cb));
    await call<boolean>((cb) => client.add('k1', 'other', 0, cb)).catch(() => false);
    await call<boolean>((cb) => client.set('cnt', '7', 0, cb));
    await call<number | boolean>((cb) => client.incr('cnt', 3, cb));
    await call<unknown>((cb) => client.get('k1', cb));
    await call<unknown>((cb) => client.get('absent', cb));
    await call<boolean>((cb) => client.del('k1', cb));
    client.end();
    await l.finish(() => l.ops.length >= 7);
    assert.deepEqual(l.ops.map(show), [
      'text set k1 stored value=hello',
      'text add k1 not_stored value=other',
      'text set cnt stored value=7',
      'text incr cnt number number=10',
      'text get k1 hit value=hello',
      'text get absent miss',
      'text delete k1 deleted',
    ]);
  });

  it('memjs over the binary protocol', async () => {
    const l = await live();
    const client = memjs.Client.create(`127.0.0.1:${l.server.port}`, { retries: 0, logger: { log() {} } });
    await client.set('b1', 'one', { expires: 0 });
    assert.equal(await client.add('b1', 'two', { expires: 0 }), false);
    assert.equal(await client.replace('absent', 'x', { expires: 0 }), false);
    await client.increment('ctr', 4, { initial: 10 });
    await client.increment('ctr', 4, {});
    await client.get('b1');
    await client.get('absent');
    await client.delete('b1');
    client.close();
    await l.finish(() => l.ops.length >= 8);
    assert.deepEqual(l.ops.map(show), [
      'binary set b1 stored value=one',
      'binary add b1 not_stored value=two',
      'binary replace absent not_stored value=x',
      'binary incr ctr number number=10',
      'binary incr ctr number number=14',
      'binary get b1 hit value=one',
      'binary get absent miss',
      'binary delete b1 deleted',
    ]);
    assert.equal(l.extractor.counters.binaryFlows, 1);
  });

  for (const binary of [false, true]) {
    it(`memcslap${binary ? ' --binary' : ''}: every set and get paired`, async () => {
      const l = await live();
      const servers = `127.0.0.1:${l.server.port}`;
      const flags = binary ? ['--binary'] : [];
      assert.equal(await run('memcslap', ['-s', servers, ...flags, '-t', 'set', '-e', '2000', '-q']), 0);
      assert.equal(await run('memcslap', ['-s', servers, ...flags, '-t', 'get', '-e', '2000', '-q']), 0);
      assert.equal(await run('memcslap', ['-s', servers, ...flags, '-t', 'mget', '-e', '200', '-q']), 0);
      const c = l.extractor.counters;
      await l.finish(() => l.extractor.flows === 0 && c.commands.set >= 4000 && c.commands.get >= 2000);
      assert.equal(c.protocolErrors, 0);
      assert.equal(c.unpairedResponses, 0);
      assert.equal(c.mismatchedResponses, 0);
      assert.equal(c.unknownOutcomes, 0);
      assert.ok(c.commands.set >= 4000, `sets: ${c.commands.set}`);
      assert.ok(c.commands.get >= 2000, `gets: ${c.commands.get}`);
      const stored = l.ops.filter((op) => op.command === 'set' && op.outcome === 'stored');
      assert.equal(stored.length, c.commands.set);
      const hit = l.ops.find((op) => op.command === 'get' && op.outcome === 'hit');
      assert.ok(hit && hit.value !== undefined && hit.value.length > 0);
      assert.equal(binary ? c.binaryFlows : c.textFlows, c.flows);
    });
  }
});
