/**
 * The loss repair is for, end to end: real traffic to a real memcached is
 * recorded, holes are cut into its flow (the packets a kernel would have
 * dropped), `memshift mirror` replays the holed capture into a reshaped
 * pool, and `memshift repair` then leaves no stale value and no key the
 * source lacks, checked key by key against the source.
 */
import assert from 'node:assert/strict';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PcapReader } from '../src/capture/pcap.js';
import { startTcpdump } from '../src/capture/tcpdump.js';
import { PcapngWriter } from '../src/capture/writer.js';
import { MemcachedClient } from '../src/net/client.js';
import type { RepairReport } from '../src/jobs/repair.js';
import { memshift } from './support/cli.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';
import { audit, ketamaPool, PoolClients } from './support/pool-audit.js';

/** Rewrites a pcap file as pcapng without the packets `drop` picks (by their bytes and ordinal). */
function cutHoles(pcap: Buffer, drop: (data: Buffer) => boolean): { file: Buffer; dropped: number } {
  const writer = new PcapngWriter();
  const reader = new PcapReader();
  const parts: Buffer[] = [writer.section()];
  let linkType = -1;
  let dropped = 0;
  reader.push(pcap, (record) => {
    if (linkType < 0) {
      linkType = record.linkType;
      parts.push(writer.interface(linkType));
    }
    const data = Buffer.from(record.data);
    if (drop(data)) {
      dropped++;
      return;
    }
    parts.push(writer.enhancedPacket(0, record.timestampMicros, data, record.originalLength));
  });
  reader.end();
  return { file: Buffer.concat(parts), dropped };
}

describe('mirror from a capture with holes, then repair (real memcached, tcpdump)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'memshift-repair-pcap-'));
  const recorded = join(dir, 'traffic.pcap');
  const holed = join(dir, 'holed.pcapng');
  const keys = Array.from({ length: 600 }, (_, i) => `hole:${i}`);
  let source: MemcachedServer;
  let targets: MemcachedServer[] = [];

  before(async () => {
    source = await startMemcached();
    targets = [await startMemcached(), await startMemcached()];
    const tcpdump = startTcpdump({ interface: 'lo', serverPorts: [source.port], immediate: true });
    const out = createWriteStream(recorded);
    tcpdump.stdout.pipe(out);
    await tcpdump.ready;
    const client = new MemcachedClient(source.address);
    // Small pipelined groups, each awaited: many packets, so holes can be cut between them.
    for (let i = 0; i < keys.length; i += 10) {
      await Promise.all(keys.slice(i, i + 10).map((k) => client.set(k, `v1 ${k}`, { flags: 1, exptime: 0 })));
    }
    for (let i = 0; i < keys.length; i += 10) {
      await Promise.all(
        keys
          .slice(i, i + 10)
          .map((k, n) => (n === 3 ? client.delete(k) : client.set(k, `v2 ${k}`, { flags: 2, exptime: 0 }))),
      );
    }
    // A last request marks the end: once it is in the file, everything before it is too (bounded poll).
    await client.get('hole:end-of-recording');
    await client.close();
    const deadline = Date.now() + 10_000;
    while (!readFileSync(recorded).includes('hole:end-of-recording')) {
      assert.ok(Date.now() < deadline, 'tcpdump wrote the whole recording');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await tcpdump.stop();
    await new Promise<void>((resolve) => out.close(() => resolve()));
  });

  after(async () => {
    await Promise.all([source, ...targets].map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves 0 stale values and 0 keys the source lacks', async () => {
    // Holes: some packets carrying the second round's sets and deletes, as a kernel drop would lose them.
    let writes = 0;
    const cut = cutHoles(readFileSync(recorded), (data) => {
      if (!data.includes('v2 hole:') && !data.includes('delete hole:')) return false;
      writes++;
      return writes % 9 === 4;
    });
    assert.ok(cut.dropped >= 3, `holes cut: ${cut.dropped}`);
    writeFileSync(holed, cut.file);
    const to = targets.map((t) => t.address).join(',');
    const mirror = memshift(
      ['mirror', '--pcap', holed, '--port', String(source.port), '--to', to, '--hash', 'ketama', '--no-fill'],
      { timeoutMs: 60_000 },
    );
    // The mirror's verdict on a lossy capture is its own business; it must have run, not crashed.
    assert.ok(
      mirror.status !== null && mirror.status !== 2 && mirror.status !== 70,
      `mirror exited ${mirror.status}: ${mirror.stderr}`,
    );

    const src = new PoolClients(ketamaPool([source.address]));
    const dst = new PoolClients(ketamaPool(targets.map((t) => t.address)));
    try {
      const before = await audit(src, dst, keys);
      assert.ok(before.older.length > 0, 'the holes left stale values on the new pool');
      assert.ok(before.resurrected.length > 0, 'the holes left keys the source deleted');
      const run = memshift(
        ['repair', '--from', source.address, '--to', to, '--hash', 'ketama', '--no-checkpoint', '--json'],
        { timeoutMs: 60_000 },
      );
      assert.equal(run.status, 0, run.stderr);
      const report = JSON.parse(run.stdout) as RepairReport;
      assert.equal(report.counts.removedStale, before.older.length);
      assert.equal(report.counts.removedAbsentOnSource, before.resurrected.length);
      assert.equal(report.counts.equal, before.same);
      const afterRepair = await audit(src, dst, keys);
      assert.deepEqual(afterRepair.older, []);
      assert.deepEqual(afterRepair.resurrected, []);
      assert.equal(afterRepair.same, before.same, 'nothing equal was removed');
    } finally {
      await src.close();
      await dst.close();
    }
  });
});
