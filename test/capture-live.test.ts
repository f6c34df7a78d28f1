/**
 * The capture path against real traffic: node sockets on loopback, captured
 * by the real tcpdump (to a file, and through memshift's tcpdump runner).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { parseAddressRange } from '../src/capture/filter.js';
import { LINKTYPE } from '../src/capture/link.js';
import { PcapError, PcapReader } from '../src/capture/pcap.js';
import { CapturePipeline } from '../src/capture/pipeline.js';
import type { CloseReason, Direction, Flow, FlowListener } from '../src/capture/tcp-reassembly.js';
import { startTcpdump } from '../src/capture/tcpdump.js';
import { PcapngWriter } from '../src/capture/writer.js';
import { MemshiftError } from '../src/protocol/errors.js';
import { chunkings } from './support/chunks.js';

const LIVE_TIMEOUT = 120_000;
const PROGRAMS = [
  ['tcpdump', 'tcpdump'],
  ['helper', 'memshift-capture'],
] as const;

/** Per flow (keyed by client port): both streams, open/close facts. */
interface Seen {
  flow: Flow;
  request: Buffer[];
  response: Buffer[];
  gaps: number;
  closed: CloseReason | undefined;
}

class Collector implements FlowListener {
  readonly byClient = new Map<string, Seen>();
  open(flow: Flow): void {
    this.byClient.set(key(flow.client.address, flow.client.port), {
      flow,
      request: [],
      response: [],
      gaps: 0,
      closed: undefined,
    });
  }
  data(flow: Flow, direction: Direction, chunk: Buffer): void {
    this.get(flow)[direction].push(Buffer.from(chunk));
  }
  gap(flow: Flow): void {
    this.get(flow).gaps++;
  }
  close(flow: Flow, reason: CloseReason): void {
    this.get(flow).closed = reason;
  }
  private get(flow: Flow): Seen {
    const seen = this.byClient.get(key(flow.client.address, flow.client.port));
    assert.ok(seen, 'event for a flow never opened');
    return seen;
  }
}

function key(address: string, port: number): string {
  return `${address} ${port}`;
}

/** A server that answers every chunk with the same bytes, case flipped: responses differ from requests. */
async function startServer(host: string): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.on('data', (chunk: Buffer) => socket.write(chunk.map((b) => b ^ 0x20)));
    socket.on('end', () => socket.end());
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

interface Conversation {
  readonly client: string;
  readonly clientPort: number;
  readonly sent: Buffer;
  readonly received: Buffer;
}

async function opened(host: string, port: number, localAddress?: string): Promise<Socket> {
  const socket = connect({ host, port, ...(localAddress ? { localAddress } : {}) });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Sends each message and waits for its whole answer. */
async function exchange(socket: Socket, messages: readonly Buffer[]): Promise<Buffer> {
  const received: Buffer[] = [];
  for (const message of messages) {
    let got = 0;
    const done = new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        received.push(chunk);
        got += chunk.length;
        if (got >= message.length) {
          socket.off('data', onData);
          resolve();
        }
      };
      socket.on('data', onData);
      socket.once('error', reject);
    });
    socket.write(message);
    await done;
  }
  return Buffer.concat(received);
}

async function closed(socket: Socket): Promise<void> {
  const done = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.end();
  socket.resume();
  await done;
}

async function converse(host: string, port: number, messages: readonly Buffer[], localAddress?: string) {
  const socket = await opened(host, port, localAddress);
  const clientPort = socket.localPort!;
  const client = socket.localAddress!;
  const received = await exchange(socket, messages);
  await closed(socket);
  return { client, clientPort, sent: Buffer.concat(messages), received } satisfies Conversation;
}

/** `tcpdump -i IFACE -w FILE` as a user would run it; stopped with SIGINT. */
async function captureToFile(iface: string, file: string, filter: string, extra: string[] = []) {
  const args = ['-i', iface, '-U', '-B', '32768', '-w', file, ...extra, filter];
  const child = spawn('tcpdump', args, {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${stderr}`)), 20_000);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', () => reject(new Error(`tcpdump exited: ${stderr}`)));
  });
  return {
    async stop(): Promise<string> {
      const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
      child.kill('SIGINT');
      await exited;
      return stderr;
    },
  };
}

/** Waits (bounded) until `cond` holds: tcpdump writes what it captured a moment after the traffic. */
async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await cond()) return;
    await sleep(20);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/**
 * Waits until tcpdump has written everything sent so far: captures keep
 * packet order, so once a later "sentinel" connection is in the file whole,
 * so is (or was dropped) everything before it. Returns the sentinels' client
 * ports, for the caller to leave out.
 */
async function caughtUp(file: string, ports: number[], serverPort: number): Promise<Set<number>> {
  const sentinels = new Set<number>();
  for (let attempt = 0; attempt < 20; attempt++) {
    const s = await converse('127.0.0.1', serverPort, [Buffer.from('sentinel\r\n')]);
    sentinels.add(s.clientPort);
    for (let poll = 0; poll < 50; poll++) {
      try {
        if (replay(await readFile(file), ports).byClient.get(key(s.client, s.clientPort))?.closed === 'fin') {
          return sentinels;
        }
      } catch (err) {
        if (!(err instanceof PcapError)) throw err; // else tcpdump was writing a record just now
      }
      await sleep(20);
    }
  }
  throw new Error(`tcpdump never caught up with the traffic in ${file}`);
}

function flowsBesides(collector: Collector, sentinels: Set<number>): number {
  return [...collector.byClient.values()].filter((s) => !sentinels.has(s.flow.client.port)).length;
}

function replay(capture: Buffer, serverPorts: number[], chunks: Buffer[] = [capture]): Collector {
  const collector = new Collector();
  const pipeline = new CapturePipeline(collector, { serverPorts });
  for (const chunk of chunks) pipeline.push(chunk);
  pipeline.end();
  return collector;
}

function assertConversation(collector: Collector, c: Conversation, midstream = false): void {
  const seen = collector.byClient.get(key(c.client, c.clientPort));
  assert.ok(seen, `no flow for ${c.client}:${c.clientPort}`);
  assert.equal(seen.flow.midstream, midstream);
  assert.equal(seen.gaps, 0);
  assert.ok(Buffer.concat(seen.request).equals(c.sent), `request bytes of ${c.clientPort}`);
  assert.ok(Buffer.concat(seen.response).equals(c.received), `response bytes of ${c.clientPort}`);
  assert.equal(seen.closed, 'fin');
}

function message(n: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = 0x41 + ((i * 7 + n) % 26);
  return b;
}

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memshift-capture-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('real tcpdump captures on lo', { timeout: LIVE_TIMEOUT }, () => {
  it('reads an Ethernet capture of IPv4 and IPv6 loopback traffic, whole and at random splits, also as pcapng', async () => {
    const v4 = await startServer('127.0.0.1');
    const v6 = await startServer('::1');
    const file = join(dir, 'lo.pcap');
    const tcpdump = await captureToFile('lo', file, `tcp port ${v4.port} or tcp port ${v6.port}`);
    const conversations = [
      await converse('127.0.0.1', v4.port, [Buffer.from('get a\r\n'), message(1, 3000)]),
      await converse('::1', v6.port, [
        Buffer.from('get b\r\n'),
        message(2, 150_000),
        Buffer.from('quit\r\n'),
      ]),
    ];
    const sentinels = await caughtUp(file, [v4.port, v6.port], v4.port);
    await tcpdump.stop();
    v4.server.close();
    v6.server.close();
    const capture = await readFile(file);
    const reader = new PcapReader();
    reader.push(capture, () => {});
    assert.equal(reader.format, 'pcap');
    assert.equal(reader.interfaces[0]!.linkType, LINKTYPE.ETHERNET);
    const ports = [v4.port, v6.port];
    const records = (chunks: Buffer[]): string[] => {
      const r = new PcapReader();
      const seen: string[] = [];
      for (const chunk of chunks)
        r.push(chunk, (p) => seen.push(`${p.timestampMicros} ${p.data.toString('hex')}`));
      r.end();
      return seen;
    };
    const whole = records([capture]);
    for (const { name, chunks } of chunkings(capture, 10)) {
      if (name.startsWith('split at') && Number(name.slice(9)) % 997 !== 0) continue;
      assert.deepEqual(records(chunks), whole, name);
    }
    for (const { name, chunks } of chunkings(capture, 10)) {
      if (name.startsWith('split at') && Number(name.slice(9)) % 997 !== 0) continue; // a sample of the split points
      const collector = replay(capture, ports, chunks);
      assert.equal(flowsBesides(collector, sentinels), 2, name);
      for (const c of conversations) assertConversation(collector, c);
    }
    // The same packets as pcapng, big-endian, nanosecond timestamps.
    const w = new PcapngWriter({ bigEndian: true });
    const blocks = [w.section(), w.interface(LINKTYPE.ETHERNET, { tsresol: 9 })];
    new PcapReader().push(capture, (r) =>
      blocks.push(w.enhancedPacket(0, r.timestampMicros, r.data, r.originalLength)),
    );
    const ng = Buffer.concat(blocks);
    for (const { name, chunks } of chunkings(ng, 5)) {
      if (name.startsWith('split at') || name === 'byte by byte') continue;
      const collector = replay(ng, ports, chunks);
      for (const c of conversations) assertConversation(collector, c);
    }
  });

  it('reports a truncated capture with its offset, after handing on every flow seen before the cut', async () => {
    const { server, port } = await startServer('127.0.0.1');
    const file = join(dir, 'cut.pcap');
    const tcpdump = await captureToFile('lo', file, `tcp port ${port}`);
    const c = await converse('127.0.0.1', port, [Buffer.from('get a\r\n'), message(5, 20_000)]);
    await caughtUp(file, [port], port);
    await tcpdump.stop();
    server.close();
    const capture = await readFile(file);
    // Cut in the middle of the record that carries the 20,000-byte message.
    let cutRecordAt = -1;
    let offset = 24;
    new PcapReader().push(capture, (r) => {
      if (cutRecordAt < 0 && r.end - r.start > 10_000) cutRecordAt = offset;
      offset += 16 + r.end - r.start;
    });
    assert.ok(cutRecordAt > 0, 'no large record');
    const collector = new Collector();
    const pipeline = new CapturePipeline(collector, { serverPorts: [port] });
    pipeline.push(capture.subarray(0, cutRecordAt + 1000));
    assert.throws(
      () => pipeline.end(),
      (err: unknown) =>
        err instanceof PcapError &&
        err.offset === cutRecordAt &&
        err.message.includes(`truncated: it ends inside a packet record at byte ${cutRecordAt}`),
    );
    const seen = collector.byClient.get(key(c.client, c.clientPort));
    assert.equal(seen?.closed, 'end');
    assert.equal(Buffer.concat(seen.request).toString(), 'get a\r\n');
  });

  for (const [linkName, extra, linkType] of [
    ['Linux cooked v1', ['-y', 'LINUX_SLL'], LINKTYPE.LINUX_SLL],
    ['Linux cooked v2', ['-y', 'LINUX_SLL2'], LINKTYPE.LINUX_SLL2],
  ] as const) {
    it(`reads a ${linkName} capture from -i any`, async () => {
      const { server, port } = await startServer('127.0.0.1');
      const file = join(dir, `any-${linkType}.pcap`);
      const tcpdump = await captureToFile('any', file, `tcp port ${port}`, [...extra]);
      const c = await converse('127.0.0.1', port, [Buffer.from('get a\r\n'), message(3, 5000)]);
      await caughtUp(file, [port], port);
      await tcpdump.stop();
      server.close();
      const capture = await readFile(file);
      const reader = new PcapReader();
      reader.push(capture, () => {});
      assert.equal(reader.interfaces[0]!.linkType, linkType);
      assertConversation(replay(capture, [port]), c);
    });
  }

  it('sees 1,000 short-lived connections opened and closed with their bytes intact', async () => {
    const { server, port } = await startServer('127.0.0.1');
    const file = join(dir, 'many.pcap');
    const tcpdump = await captureToFile('lo', file, `tcp port ${port}`);
    const conversations: Conversation[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const started = [];
      for (let i = 0; i < 50; i++) {
        const n = batch * 50 + i;
        started.push(
          converse('127.0.0.1', port, [Buffer.from(`set k${n} 0 0 ${n}\r\n`), message(n, 1 + (n % 700))]),
        );
      }
      conversations.push(...(await Promise.all(started)));
    }
    const sentinels = await caughtUp(file, [port], port);
    const stderr = await tcpdump.stop();
    server.close();
    assert.match(stderr, /\b0 packets dropped by kernel/);
    const collector = replay(await readFile(file), [port]);
    assert.equal(flowsBesides(collector, sentinels), 1000);
    for (const c of conversations) assertConversation(collector, c);
  });

  it('joins a connection opened before the capture started mid-stream', async () => {
    const { server, port } = await startServer('127.0.0.1');
    const socket = await opened('127.0.0.1', port);
    await exchange(socket, [Buffer.from('before the capture\r\n')]);
    const file = join(dir, 'midstream.pcap');
    const tcpdump = await captureToFile('lo', file, `tcp port ${port}`);
    const later = [Buffer.from('get after\r\n'), message(9, 2000)];
    const received = await exchange(socket, later);
    const c = { client: '127.0.0.1', clientPort: socket.localPort!, sent: Buffer.concat(later), received };
    await closed(socket);
    await caughtUp(file, [port], port);
    await tcpdump.stop();
    server.close();
    assertConversation(replay(await readFile(file), [port]), c, true);
  });
});

describe('tcpdump runner', { timeout: LIVE_TIMEOUT }, () => {
  it('captures the exact bytes of each direction from a live pipe', async () => {
    const { server, port } = await startServer('127.0.0.1');
    const tcpdump = startTcpdump({ interface: 'lo', serverPorts: [port] });
    const collector = new Collector();
    const pipeline = new CapturePipeline(collector, { serverPorts: [port] });
    tcpdump.stdout.on('data', (chunk: Buffer) => pipeline.push(chunk));
    await tcpdump.ready;
    const c = await converse('127.0.0.1', port, [Buffer.from('get live\r\n'), message(4, 70_000)]);
    await until(
      () => collector.byClient.get(key(c.client, c.clientPort))?.closed === 'fin',
      'the flow to close',
    );
    const midway = await tcpdump.requestStats();
    assert.equal(typeof midway.droppedByKernel, 'number');
    const stats = await tcpdump.stop();
    server.close();
    pipeline.end();
    assertConversation(collector, c);
    assert.equal(stats.droppedByKernel, 0);
    assert.ok((stats.captured ?? 0) >= 10, `captured ${stats.captured}`);
    assert.deepEqual(tcpdump.args.slice(0, 5), ['-i', 'lo', '-U', '-w', '-']);
  });

  it('leaves out an excluded client (127.0.0.2) in the kernel filter', async () => {
    const { server, port } = await startServer('127.0.0.1');
    const tcpdump = startTcpdump({
      interface: 'lo',
      serverPorts: [port],
      excludeClients: [parseAddressRange('127.0.0.2')],
    });
    const collector = new Collector();
    const pipeline = new CapturePipeline(collector, { serverPorts: [port] });
    tcpdump.stdout.on('data', (chunk: Buffer) => pipeline.push(chunk));
    await tcpdump.ready;
    const kept = await converse('127.0.0.1', port, [Buffer.from('get kept\r\n')]);
    const left = await converse('127.0.0.1', port, [Buffer.from('stats\r\n')], '127.0.0.2');
    assert.equal(left.client, '127.0.0.2');
    // A third conversation after the excluded one: once it is seen, the excluded one would have been.
    const last = await converse('127.0.0.1', port, [Buffer.from('get last\r\n')]);
    await until(
      () => collector.byClient.get(key(last.client, last.clientPort))?.closed === 'fin',
      'the last flow',
    );
    await tcpdump.stop();
    server.close();
    pipeline.end();
    assert.deepEqual(
      [...collector.byClient.keys()],
      [key('127.0.0.1', kept.clientPort), key('127.0.0.1', last.clientPort)],
    );
    assertConversation(collector, kept);
  });

  it('says in one line what to install when tcpdump is missing', async () => {
    const tcpdump = startTcpdump({
      interface: 'lo',
      serverPorts: [11211],
      tcpdumpPath: '/nonexistent/tcpdump',
    });
    await assert.rejects(tcpdump.ready, (err: unknown) => {
      assert.ok(err instanceof MemshiftError);
      assert.equal(err.code, 'MEMSHIFT_ERR_TCPDUMP_MISSING');
      assert.match(
        err.message,
        /^tcpdump not found \(\/nonexistent\/tcpdump\): install tcpdump: apt-get install tcpdump$/,
      );
      return true;
    });
    await tcpdump.stop();
  });

  it('says which capability to grant when tcpdump lacks privileges', async () => {
    // Real tcpdump, run as nobody without capabilities.
    const wrapper = join(dir, 'tcpdump-unprivileged');
    await writeFile(
      wrapper,
      '#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all tcpdump "$@"\n',
    );
    await chmod(wrapper, 0o755);
    const tcpdump = startTcpdump({ interface: 'lo', serverPorts: [11211], tcpdumpPath: wrapper });
    await assert.rejects(tcpdump.ready, (err: unknown) => {
      assert.ok(err instanceof MemshiftError);
      assert.equal(err.code, 'MEMSHIFT_ERR_TCPDUMP_PERMISSION');
      assert.equal(
        err.message,
        'tcpdump may not capture on lo: run as root or grant: setcap cap_net_raw,cap_net_admin=eip $(command -v tcpdump)',
      );
      return true;
    });
  });

  for (const [program, name] of PROGRAMS) {
    it(`reports a capture that stops by itself (${name})`, async () => {
      const tcpdump = startTcpdump({ interface: 'lo', serverPorts: [11211], program });
      tcpdump.stdout.resume();
      await tcpdump.ready;
      process.kill(tcpdump.pid!, 'SIGKILL');
      await tcpdump.exited;
      assert.equal(tcpdump.error?.code, 'MEMSHIFT_ERR_TCPDUMP');
      assert.equal(tcpdump.error?.message, `${name} stopped capturing on lo: killed by SIGKILL`);
    });

    it(`passes on the capture program's reason for other failures (${name})`, async () => {
      const tcpdump = startTcpdump({ interface: 'memshift-none0', serverPorts: [11211], program });
      await assert.rejects(
        tcpdump.ready,
        new RegExp(`^MemshiftError: ${name} could not capture on memshift-none0: .*No such device`),
      );
    });
  }
});
