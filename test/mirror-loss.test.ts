/**
 * A capture that loses packets says so: real tcpdump on lo with a kernel ring
 * of a single slot cannot keep up with a burst of pipelined requests, so the
 * kernel drops packets. Those drops and the stream gaps they leave are
 * counted, warned about while mirror runs, shown on /metrics, told in the
 * summary with the repair command, and make the exit status 1.
 */
import assert from 'node:assert/strict';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PacketDecoder } from '../src/capture/decode.js';
import { PcapReader } from '../src/capture/pcap.js';
import { startTcpdump } from '../src/capture/tcpdump.js';
import { PcapWriter } from '../src/capture/writer.js';
import { MemcachedClient } from '../src/net/client.js';
import { memshift, start } from './support/cli.js';
import { startMemcached } from './support/memcached.js';

/**
 * The capture without every third client-to-server packet that carries data
 * and that a later server packet acknowledges (so the reassembly can tell it
 * was lost): one hole in the request stream per packet cut.
 */
function cutHoles(pcap: Buffer, serverPort: number): { file: Buffer; cut: number } {
  const records: { micros: number; data: Buffer; originalLength: number; linkType: number }[] = [];
  const reader = new PcapReader();
  reader.push(pcap, (r) =>
    records.push({
      micros: r.timestampMicros,
      data: Buffer.from(r.data),
      originalLength: r.originalLength,
      linkType: r.linkType,
    }),
  );
  reader.end();
  const decoder = new PacketDecoder();
  const info = records.map((r) => {
    const s = decoder.decodeFrame(r.linkType, r.data, r.micros);
    return s === undefined
      ? undefined
      : {
          fromClient: s.srcPort !== serverPort,
          client: s.srcPort === serverPort ? s.dstPort : s.srcPort,
          end: (s.seq + s.payloadLength) >>> 0,
          ack: s.ack,
          length: s.payloadLength,
        };
  });
  const acked = (i: number): boolean => {
    const me = info[i]!;
    return info
      .slice(i + 1)
      .some((o) => o !== undefined && !o.fromClient && o.client === me.client && ((o.ack - me.end) | 0) >= 0);
  };
  const first = records[0]!;
  const writer = new PcapWriter({ linkType: first.linkType });
  const parts: Buffer[] = [writer.header()];
  let requests = 0;
  let cut = 0;
  for (const [i, r] of records.entries()) {
    const s = info[i];
    if (s !== undefined && s.fromClient && s.length > 0 && ++requests % 3 === 0 && acked(i)) {
      cut++;
      continue;
    }
    parts.push(writer.record(r.micros, r.data, r.originalLength));
  }
  return { file: Buffer.concat(parts), cut };
}

describe('memshift mirror when the capture loses packets', () => {
  it('a pcap file with holes cut into its flows: gaps counted, warned, exit status 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'memshift-loss-'));
    const source = await startMemcached();
    const target = await startMemcached();
    try {
      const recorded = join(dir, 'recorded.pcap');
      const tcpdump = startTcpdump({ interface: 'lo', serverPorts: [source.port], immediate: true });
      const file = createWriteStream(recorded);
      tcpdump.stdout.pipe(file);
      await tcpdump.ready;
      // One request per packet: each awaited before the next.
      const client = new MemcachedClient(source.address, { connections: 1 });
      for (let i = 0; i < 60; i++) await client.set(`hole:${i}`, `v${i}`);
      await client.close();
      await tcpdump.stop();
      await new Promise<void>((resolve) => file.close(() => resolve()));
      const { file: holes, cut } = cutHoles(readFileSync(recorded), source.port);
      assert.ok(cut >= 10, `cut ${cut} packets`);
      writeFileSync(join(dir, 'holes.pcap'), holes);
      const run = memshift([
        'mirror',
        '--pcap',
        join(dir, 'holes.pcap'),
        '--port',
        String(source.port),
        '--to',
        target.address,
      ]);
      assert.equal(run.status, 1, run.stderr);
      assert.match(
        run.stderr,
        /memshift: warning: capture is losing traffic: 0 packets dropped by the kernel, [1-9]\d* stream gaps/,
      );
      const gaps = Number(/0 packets dropped by the kernel, (\d+) stream gaps \(/.exec(run.stdout)?.[1]);
      assert.equal(gaps, cut, run.stdout);
      assert.match(run.stdout, /Run `memshift repair` before the switch\./);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await source.stop();
      await target.stop();
    }
  });

  it('counts kernel drops and stream gaps, warns, and exits 1 pointing to the repair', async () => {
    const source = await startMemcached();
    const target = await startMemcached();
    const mirror = start([
      'mirror',
      '-i',
      'lo',
      '--port',
      String(source.port),
      '--to',
      target.address,
      // Immediate delivery with one ring slot (libpcap rounds the buffer up to one snap-length frame).
      '--immediate',
      '--capture-buffer',
      '1k',
      '--web',
      '127.0.0.1:0',
    ]);
    const client = new MemcachedClient(source.address, { connections: 4, maxPending: 10_000 });
    try {
      const url = await mirror.dashboardUrl();
      for (let i = 0; i < 200 && !/capturing on lo/.test(mirror.stderr()); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.match(mirror.stderr(), /capturing on lo .*ring 1 KiB/);
      // Bursts of pipelined sets until /metrics shows both kernel drops and stream gaps (bounded:
      // 100 bursts). A burst may lose whole connections, which leaves no gap; a later burst on
      // connections already followed loses packets inside them.
      const value = Buffer.alloc(2000, 'x');
      const lossShown = (metrics: string): boolean =>
        /^memshift_mirror_capture_loss_total\{series="kernel drops"\} [1-9]\d*$/m.test(metrics) &&
        /^memshift_mirror_capture_loss_total\{series="stream gaps"\} [1-9]\d*$/m.test(metrics);
      let metrics = '';
      for (let burst = 0; burst < 100 && !lossShown(metrics); burst++) {
        const sets: Promise<unknown>[] = [];
        for (let i = 0; i < 2000; i++) sets.push(client.set(`loss:${burst}:${i}`, value));
        await Promise.all(sets);
        await new Promise((resolve) => setTimeout(resolve, 200)); // loss is read once a second: let it come
        metrics = await (await fetch(`${url}metrics`)).text();
      }
      assert.ok(lossShown(metrics), metrics);
      assert.match(
        mirror.stderr(),
        /memshift: warning: capture is losing traffic: \d+ packets dropped by the kernel, \d+ stream gaps;.*run `memshift repair`/,
      );
      mirror.child.kill('SIGINT');
      assert.equal(await mirror.exited, 1, mirror.stderr());
      const drops = Number(
        /(\d+) packets dropped by the kernel, (\d+) stream gaps \(/.exec(mirror.stdout())?.[1],
      );
      assert.ok(drops > 0, mirror.stdout());
      assert.match(
        mirror.stdout(),
        /WARNING: capture lost traffic: .*Run `memshift repair` before the switch\./,
      );
    } finally {
      client.destroy();
      mirror.child.kill('SIGKILL');
      await source.stop();
      await target.stop();
    }
  });
});
