/**
 * Copy and verify throughput against real memcached on this machine, beside
 * the physical limit measured in the same run: memcached's own pipelined
 * get and set rates (pre-built `mg ... q` / `ms ... q` batches written raw
 * to a socket, nothing parsed but the closing `MN`). Then memory: the peak
 * resident size of a process copying 10 million keys.
 *
 * Prints one JSON object; rates are medians of RUNS runs.
 *
 *   npx tsc -p . && node dist/bench/copy.js [keys=1000000] [memoryKeys=10000000]
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { runCopy } from '../src/jobs/copy.js';
import { startMemcached, type MemcachedServer } from '../src/jobs/local-memcached.js';
import { runVerify } from '../src/jobs/verify.js';
import { MemcachedClient } from '../src/net/client.js';
import { parsePoolSpec } from '../src/topology/pool.js';

const RUNS = 3;
const BATCH = 1000;
const CONNECTIONS = 2;
const MN_LINE = Buffer.from('MN\r\n');

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function key(i: number): string {
  return `key:${i.toString(36)}`;
}

/** Request batches of `count` keys, BATCH keys each, every one closed by `mn`. */
function batches(count: number, line: (i: number) => string, value?: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let start = 0; start < count; start += BATCH) {
    const parts: Buffer[] = [];
    for (let i = start; i < Math.min(count, start + BATCH); i++) {
      parts.push(Buffer.from(line(i)));
      if (value) parts.push(value, Buffer.from('\r\n'));
    }
    parts.push(Buffer.from('mn\r\n'));
    out.push(Buffer.concat(parts));
  }
  return out;
}

/** Writes the batches over a few connections, each waiting for its MN before the next few. */
async function blast(address: string, work: Buffer[]): Promise<number> {
  const [host, port] = address.split(':') as [string, string];
  const sockets = await Promise.all(
    Array.from(
      { length: CONNECTIONS },
      () =>
        new Promise<Socket>((resolve, reject) => {
          const s = connect({ host, port: Number(port), noDelay: true }, () => resolve(s));
          s.once('error', reject);
        }),
    ),
  );
  const started = performance.now();
  await Promise.all(
    sockets.map(async (socket, c) => {
      const mine = work.filter((_, i) => i % CONNECTIONS === c);
      let waiting = 0;
      let tail = Buffer.alloc(0);
      let wake: (() => void) | undefined;
      socket.on('data', (chunk: Buffer) => {
        // Only MN lines matter here; a split "MN\r\n" is caught by keeping a short tail.
        const head = Buffer.concat([tail, chunk.subarray(0, 3)]);
        for (
          let at = head.indexOf(MN_LINE);
          at >= 0 && at < tail.length;
          at = head.indexOf(MN_LINE, at + 1)
        ) {
          waiting--;
        }
        for (let at = chunk.indexOf(MN_LINE); at >= 0; at = chunk.indexOf(MN_LINE, at + 4)) waiting--;
        tail = Buffer.from(chunk.subarray(Math.max(0, chunk.length - 3)));
        wake?.();
      });
      for (const batch of mine) {
        while (waiting >= 8) await new Promise<void>((resolve) => (wake = resolve));
        waiting++;
        socket.write(batch);
      }
      while (waiting > 0) await new Promise<void>((resolve) => (wake = resolve));
      socket.destroy();
    }),
  );
  return performance.now() - started;
}

async function flush(server: MemcachedServer): Promise<void> {
  const c = new MemcachedClient(server.address);
  await c.flushAll();
  await c.close();
}

async function loadKeys(server: MemcachedServer, count: number, valueBytes: number): Promise<number> {
  const value = Buffer.alloc(valueBytes, 0x61);
  const ms = await blast(
    server.address,
    batches(count, (i) => `ms ${key(i)} ${valueBytes} T0 F${i & 0xffff} q\r\n`, value),
  );
  return (count / ms) * 1000;
}

async function child(from: string, to: string): Promise<void> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const report = await runCopy({
    from: parsePoolSpec(from, 'ketama', { where: 'bench' }),
    to: parsePoolSpec(to, 'ketama', { where: 'bench' }),
  });
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  process.stdout.write(
    JSON.stringify({ copied: report.copied, keysPerSecond: report.keysPerSecond, peakRssBytes: peak }),
  );
}

async function inChild(
  from: string,
  to: string,
): Promise<{ copied: number; keysPerSecond: number; peakRssBytes: number }> {
  const file = fileURLToPath(import.meta.url);
  const proc = spawn(process.execPath, [file, 'child', from, to], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((resolve) => proc.once('exit', resolve));
  return JSON.parse(out) as { copied: number; keysPerSecond: number; peakRssBytes: number };
}

async function main(): Promise<void> {
  const keys = Number(process.argv[2] ?? 1_000_000);
  const memoryKeys = Number(process.argv[3] ?? 10_000_000);
  const source = await startMemcached({ memoryMb: 4096 });
  const target = await startMemcached({ memoryMb: 4096 });
  try {
    const from = parsePoolSpec(source.address, 'ketama', { where: 'bench' });
    const to = parsePoolSpec(target.address, 'ketama', { where: 'bench' });
    const load = await loadKeys(source, keys, 100);
    const getWork = batches(keys, (i) => `mg ${key(i)} v f t q\r\n`);
    const setWork = batches(keys, (i) => `ms ${key(i)} 100 T0 F0 q\r\n`, Buffer.alloc(100, 0x62));
    const raw = { get: [] as number[], set: [] as number[] };
    const copy: number[] = [];
    const verify: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      raw.get.push((keys / (await blast(source.address, getWork))) * 1000);
      await flush(target);
      raw.set.push((keys / (await blast(target.address, setWork))) * 1000);
      await flush(target);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const report = await runCopy({ from, to });
      if (report.copied !== keys) throw new Error(`copied ${report.copied} of ${keys}`);
      copy.push(report.keysPerSecond);
      const check = await runVerify({ from, to, checkPlacement: false });
      if (check.keys.coverage !== 1) throw new Error(`verify coverage ${check.keys.coverage}`);
      verify.push(check.keysPerSecond);
    }
    const get = median(raw.get);
    const set = median(raw.set);
    // A copy does one get and one set per key: the raw limit is both, back to back.
    const rawCopy = 1 / (1 / get + 1 / set);
    const copyRate = median(copy);
    let memory: object = { skipped: 'memoryKeys=0' };
    if (memoryKeys > 0) {
      await flush(source);
      await flush(target);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await loadKeys(source, memoryKeys, 10);
      const big = await inChild(source.address, target.address);
      memory = {
        keys: memoryKeys,
        valueBytes: 10,
        copied: big.copied,
        keysPerSecond: Math.round(big.keysPerSecond),
        peakRssMB: Math.round(big.peakRssBytes / 1048576),
      };
    }
    const result = {
      keys,
      valueBytes: 100,
      runs: RUNS,
      cpus: (await import('node:os')).cpus().length,
      loadKeysPerSecond: Math.round(load),
      raw: {
        getKeysPerSecond: Math.round(get),
        setKeysPerSecond: Math.round(set),
        getThenSetKeysPerSecond: Math.round(rawCopy),
      },
      copyKeysPerSecond: Math.round(copyRate),
      copyShareOfRaw: Number((copyRate / rawCopy).toFixed(2)),
      verifyKeysPerSecond: Math.round(median(verify)),
      memory,
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await source.stop();
    await target.stop();
  }
}

if (process.argv[2] === 'child') await child(process.argv[3]!, process.argv[4]!);
else await main();
