/**
 * memshift-capture, the capture program built from native/ by `npm run build`:
 * real capture on lo through libpcap, read by the same code that reads tcpdump.
 * It is the default once built, delivers packets while no more traffic comes
 * (tcpdump's default mode holds them up to a second), answers SIGUSR1 with
 * kernel drop counts, says which right it lacks, and ends quietly when its
 * reader goes away.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CAPTURE_HELPER_PATH,
  captureHelperBuilt,
  chooseCaptureProgram,
} from '../src/capture/capture-program.js';
import { PcapReader } from '../src/capture/pcap.js';
import { startTcpdump } from '../src/capture/tcpdump.js';
import { MemcachedClient } from '../src/net/client.js';
import { MemshiftError } from '../src/protocol/errors.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

const TIMEOUT = 120_000;

async function until(test: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('memshift-capture', { timeout: TIMEOUT }, () => {
  let server: MemcachedServer;
  let dir: string;
  before(async () => {
    server = await startMemcached();
    dir = await mkdtemp(join(tmpdir(), 'memshift-capture-'));
  });
  after(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('is built and chosen by default, with tcpdump’s command line and a block timeout', () => {
    assert.ok(captureHelperBuilt(), `${CAPTURE_HELPER_PATH} missing: npm run build needs libpcap-dev`);
    assert.equal(chooseCaptureProgram(undefined), 'helper');
    assert.throws(
      () => chooseCaptureProgram('helper', join(dir, 'absent')),
      /memshift-capture is not built .*apt-get install gcc libc6-dev libpcap-dev.*--capture-program tcpdump/,
    );
  });

  it('delivers a request while no more traffic flows', async () => {
    const capture = startTcpdump({ interface: 'lo', serverPorts: [server.port] });
    assert.equal(capture.program, 'helper');
    assert.deepEqual(capture.args.slice(0, 11), [
      '-i',
      'lo',
      '-U',
      '-w',
      '-',
      '-s',
      '0',
      '-B',
      '65536',
      '-t',
      '5',
    ]);
    const reader = new PcapReader();
    let seen = false;
    capture.stdout.on('data', (chunk: Buffer) =>
      reader.push(chunk, (r) => {
        if (Buffer.from(r.data).includes('prompt:1')) seen = true;
      }),
    );
    await capture.ready;
    // One request on a connection kept open and quiet afterwards: nothing else fills the ring block.
    const socket = connect(server.port, '127.0.0.1');
    try {
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      let reply = '';
      socket.on('data', (d: Buffer) => (reply += d.toString()));
      socket.write('set prompt:1 0 0 3\r\nabc\r\n');
      await until(() => reply === 'STORED\r\n', 'the reply');
      await until(() => seen, 'the request in the capture');
    } finally {
      socket.destroy();
      await capture.stop();
    }
  });

  it('answers SIGUSR1 with kernel drops when its ring is too small for a burst', async () => {
    const capture = startTcpdump({ interface: 'lo', serverPorts: [server.port], bufferKiB: 1 });
    capture.stdout.resume();
    await capture.ready;
    const first = await capture.requestStats();
    assert.equal(first.droppedByKernel, 0);
    const client = new MemcachedClient(server.address, { connections: 4, maxPending: 10_000 });
    try {
      const value = Buffer.alloc(2000, 'x');
      let dropped = 0;
      // Bursts of pipelined sets until the kernel drops (bounded: 50 bursts).
      for (let burst = 0; burst < 50 && dropped === 0; burst++) {
        const sets: Promise<unknown>[] = [];
        for (let i = 0; i < 2000; i++) sets.push(client.set(`drop:${burst}:${i}`, value));
        await Promise.all(sets);
        dropped = (await capture.requestStats()).droppedByKernel ?? 0;
      }
      assert.ok(dropped > 0, `no drops: ${capture.stderrLines.join(' | ')}`);
      assert.ok((capture.stats.captured ?? 0) > 0);
    } finally {
      await client.close();
    }
    const final = await capture.stop();
    assert.equal(capture.error, undefined);
    assert.ok((final.droppedByKernel ?? 0) > 0);
  });

  it('says which capability to grant when it lacks privileges', async () => {
    const wrapper = join(dir, 'capture-unprivileged');
    await writeFile(
      wrapper,
      '#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all ' +
        `${CAPTURE_HELPER_PATH} "$@"\n`,
    );
    await chmod(wrapper, 0o755);
    const capture = startTcpdump({
      interface: 'lo',
      serverPorts: [11211],
      program: 'helper',
      helperPath: wrapper,
    });
    await assert.rejects(capture.ready, (err: unknown) => {
      assert.ok(err instanceof MemshiftError);
      assert.equal(err.code, 'MEMSHIFT_ERR_TCPDUMP_PERMISSION');
      assert.equal(
        err.message,
        `memshift-capture may not capture on lo: run as root or grant: setcap cap_net_raw,cap_net_admin=eip ${wrapper}`,
      );
      return true;
    });
  });

  it('ends with status 0 when its reader goes away', async () => {
    const child = spawn(
      CAPTURE_HELPER_PATH,
      ['-i', 'lo', '-w', '-', '-s', '256', `tcp port ${server.port}`],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await until(() => /listening on lo/.test(stderr), 'listening');
    child.stdout.destroy();
    const client = new MemcachedClient(server.address, { connections: 1 });
    let code: number | null | undefined;
    void exited.then((c) => (code = c));
    try {
      // Traffic until a write finds the pipe closed (bounded: 100 requests).
      for (let i = 0; i < 100 && code === undefined; i++) {
        await client.get(`gone:${i}`);
        await new Promise((resolve) => setTimeout(resolve, 20)); // lets a ring block go out and fail
      }
    } finally {
      await client.close();
    }
    assert.equal(await exited, 0, stderr);
    assert.doesNotMatch(stderr, /memshift-capture:/);
  });
});
