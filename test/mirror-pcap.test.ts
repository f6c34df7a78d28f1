import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PcapReader } from '../src/capture/pcap.js';
import { startTcpdump } from '../src/capture/tcpdump.js';
import { PcapngWriter } from '../src/capture/writer.js';
import { MemcachedClient } from '../src/net/client.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

const BIN = fileURLToPath(new URL('../../bin/memshift.js', import.meta.url));

function memshift(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** Rewrites a classic pcap file as pcapng (one interface, enhanced packet blocks). */
function toPcapng(pcap: Buffer): Buffer {
  const writer = new PcapngWriter();
  const reader = new PcapReader();
  const parts: Buffer[] = [writer.section()];
  let linkType = -1;
  reader.push(pcap, (record) => {
    if (linkType < 0) {
      linkType = record.linkType;
      parts.push(writer.interface(linkType));
    }
    parts.push(
      writer.enhancedPacket(0, record.timestampMicros, Buffer.from(record.data), record.originalLength),
    );
  });
  reader.end();
  return Buffer.concat(parts);
}

describe('memshift mirror --pcap', () => {
  const dir = mkdtempSync(join(tmpdir(), 'memshift-pcap-'));
  const pcapFile = join(dir, 'traffic.pcap');
  let source: MemcachedServer;
  const keys = Array.from({ length: 200 }, (_, i) => `pcap:${i}`);

  before(async () => {
    // Record real traffic: tcpdump on lo while a client writes to a real memcached.
    source = await startMemcached();
    const tcpdump = startTcpdump({ interface: 'lo', serverPorts: [source.port] });
    const file = createWriteStream(pcapFile);
    tcpdump.stdout.pipe(file);
    await tcpdump.ready;
    const client = new MemcachedClient(source.address);
    await Promise.all(keys.map((k, i) => client.set(k, `recorded-${i}`, { flags: i, exptime: 0 })));
    await client.delete('pcap:0');
    await client.close();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await tcpdump.stop();
    await new Promise<void>((resolve) => file.close(() => resolve()));
    await source.stop();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const format of ['pcap', 'pcapng'] as const) {
    it(`replays a ${format} file into a reshaped pool`, async () => {
      const file = format === 'pcap' ? pcapFile : join(dir, 'traffic.pcapng');
      if (format === 'pcapng') writeFileSync(file, toPcapng(readFileSync(pcapFile)));
      const targets = [await startMemcached(), await startMemcached()];
      try {
        const to = targets.map((t) => t.address).join(',');
        const run = memshift(
          'mirror',
          '--pcap',
          file,
          '--port',
          String(source.port),
          '--to',
          to,
          '--hash',
          'ketama',
          '--no-fill',
          '--json',
        );
        assert.equal(run.status, 0, run.stderr);
        const summary = JSON.parse(run.stdout) as { routes: { replay: { applied: number } }[] };
        assert.ok(summary.routes[0]!.replay.applied >= keys.length);
        const clients = targets.map((t) => new MemcachedClient(t.address));
        let found = 0;
        for (const [i, key] of keys.entries()) {
          const items = await Promise.all(clients.map((c) => c.get(key)));
          const present = items.filter((item) => item !== undefined);
          if (i === 0) assert.equal(present.length, 0, 'the deleted key stays deleted');
          else {
            assert.equal(present.length, 1, `${key} on exactly one server`);
            assert.equal(present[0]?.value.toString(), `recorded-${i}`);
            assert.equal(present[0]?.flags, i);
            found++;
          }
        }
        assert.equal(found, keys.length - 1);
        await Promise.all(clients.map((c) => c.close()));
      } finally {
        await Promise.all(targets.map((t) => t.stop()));
      }
    });
  }

  it('loops a file until --duration, paces with --speed, and writes structured logs', async () => {
    const target = await startMemcached();
    try {
      const log = join(dir, 'mirror.log');
      const looped = memshift(
        'mirror',
        '--pcap',
        pcapFile,
        '--port',
        String(source.port),
        '--map',
        target.address,
        '--loop',
        '--duration',
        '1.5',
        '--json',
        '--log',
        log,
      );
      assert.equal(looped.status, 0, looped.stderr);
      const summary = JSON.parse(looped.stdout) as { routes: { replay: { seen: number } }[] };
      assert.ok(summary.routes[0]!.replay.seen > 2 * keys.length, 'the file was replayed more than twice');
      const records = readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { event: string });
      assert.equal(records[0]?.event, 'start');
      assert.equal(records[records.length - 1]?.event, 'summary');
      assert.equal(statSync(log).mode & 0o777, 0o600, 'the log is private');

      const paced = memshift(
        'mirror',
        '--pcap',
        pcapFile,
        '--port',
        String(source.port),
        '--map',
        target.address,
        '--speed',
        '1000',
        '--json',
      );
      assert.equal(paced.status, 0, paced.stderr);
      const pacedSummary = JSON.parse(paced.stdout) as { routes: { replay: { seen: number } }[] };
      assert.equal(pacedSummary.routes[0]!.replay.seen, keys.length + 1);
    } finally {
      await target.stop();
    }
  });

  it('gives one clear error line for a garbage file, and for a truncated one after applying what it read', async () => {
    const target = await startMemcached();
    try {
      const garbage = join(dir, 'garbage.pcap');
      writeFileSync(garbage, Buffer.from('this is not a capture file at all, just text\n'.repeat(20)));
      const bad = memshift('mirror', '--pcap', garbage, '--map', target.address, '--port', '11211');
      assert.equal(bad.status, 2);
      assert.match(bad.stderr.trim(), /^memshift: .*(pcap|capture).*/i);
      assert.equal(bad.stderr.trim().split('\n').length, 1);

      const whole = readFileSync(pcapFile);
      const truncated = join(dir, 'truncated.pcap');
      writeFileSync(truncated, whole.subarray(0, Math.floor(whole.length * 0.7)));
      const cut = memshift(
        'mirror',
        '--pcap',
        truncated,
        '--port',
        String(source.port),
        '--to',
        target.address,
        '--no-fill',
        '--json',
      );
      assert.equal(cut.status, 2);
      assert.match(cut.stderr.trim(), /^memshift: .*truncated|offset|byte/i);
      const summary = JSON.parse(cut.stdout) as { routes: { replay: { applied: number } }[] };
      assert.ok(summary.routes[0]!.replay.applied > 0);

      const missing = memshift('mirror', '--pcap', join(dir, 'nope.pcap'), '--to', target.address);
      assert.equal(missing.status, 2);
      assert.match(missing.stderr.trim(), /^memshift: cannot read .*nope\.pcap: no such file$/);
    } finally {
      await target.stop();
    }
  });
});
