/**
 * Repair throughput against real memcached on this machine, beside copy's in
 * the same run and on the same keys: each run empties the target, copies the
 * source into it (copy's rate), makes 1% of the target's values stale, then
 * repairs (repair's rate, listing included, as copy's is). Beside each rate,
 * this process's CPU time per key.
 *
 * Prints one JSON object; rates are medians of `runs` runs.
 *
 *   npx tsc -p . && node dist/bench/repair.js [keys=300000] [runs=3]
 */
import { connect, type Socket } from 'node:net';
import { runCopy } from '../src/jobs/copy.js';
import { startMemcached } from '../src/jobs/local-memcached.js';
import { runRepair } from '../src/jobs/repair.js';
import { MemcachedClient } from '../src/net/client.js';
import { parsePoolSpec } from '../src/topology/pool.js';

const BATCH = 1000;
/** Longest one phase may take before the bench gives up on it. */
const DEADLINE_MS = 180_000;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Writes `ms <key> <len> q` for every i in `which`, in batches closed by `mn`, waiting for each MN. */
async function store(address: string, which: number[], value: (i: number) => Buffer): Promise<void> {
  const [host, port] = address.split(':') as [string, string];
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect({ host, port: Number(port), noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
  let pending = '';
  let wake: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    pending += d.toString('latin1');
    if (pending.includes('MN\r\n')) {
      pending = '';
      wake?.();
    }
  });
  const deadline = performance.now() + DEADLINE_MS;
  try {
    for (let start = 0; start < which.length; start += BATCH) {
      if (performance.now() > deadline) throw new Error('loading took too long');
      const parts: Buffer[] = [];
      for (const i of which.slice(start, start + BATCH)) {
        const v = value(i);
        parts.push(Buffer.from(`ms key:${i.toString(36)} ${v.length} T0 F3 q\r\n`), v, Buffer.from('\r\n'));
      }
      parts.push(Buffer.from('mn\r\n'));
      const done = new Promise<void>((resolve) => (wake = resolve));
      socket.write(Buffer.concat(parts));
      await done;
    }
  } finally {
    socket.destroy();
  }
}

async function timed<T>(work: () => Promise<T>): Promise<{ result: T; seconds: number; cpuMicros: number }> {
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const result = await work();
  const seconds = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu);
  return { result, seconds, cpuMicros: used.user + used.system };
}

async function main(): Promise<void> {
  const keys = Number(process.argv[2] ?? 300_000);
  const runs = Number(process.argv[3] ?? 3);
  const source = await startMemcached({ memoryMb: 512 });
  const target = await startMemcached({ memoryMb: 512 });
  const from = parsePoolSpec(source.address, 'ketama', { where: 'bench' });
  const to = parsePoolSpec(target.address, 'ketama', { where: 'bench' });
  const all = Array.from({ length: keys }, (_, i) => i);
  const stale = all.filter((i) => i % 100 === 7);
  const original = (i: number): Buffer => Buffer.from(`value ${i} `.padEnd(100, 'x'));
  const copyRates: number[] = [];
  const repairRates: number[] = [];
  const copyCpu: number[] = [];
  const repairCpu: number[] = [];
  const removed: number[] = [];
  try {
    await store(source.address, all, original);
    const admin = new MemcachedClient(target.address);
    for (let run = 0; run < runs; run++) {
      await admin.flushAll();
      const copy = await timed(() => runCopy({ from, to }));
      if (copy.result.copied !== keys) throw new Error(`copy copied ${copy.result.copied} of ${keys}`);
      await store(target.address, stale, (i) => Buffer.from(`stale ${i} `.padEnd(100, 'y')));
      const repair = await timed(() => runRepair({ from, to }));
      if (!repair.result.complete) throw new Error(`repair incomplete: ${repair.result.errors.join('; ')}`);
      copyRates.push(keys / copy.seconds);
      repairRates.push(repair.result.counts.compared / repair.seconds);
      copyCpu.push(copy.cpuMicros / keys);
      repairCpu.push(repair.cpuMicros / repair.result.counts.compared);
      removed.push(repair.result.counts.removedStale);
    }
    await admin.close();
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
  const copyRate = median(copyRates);
  const repairRate = median(repairRates);
  console.log(
    JSON.stringify(
      {
        keys,
        runs,
        valueBytes: 100,
        staleKeys: stale.length,
        removedStale: removed,
        copy: { keysPerSecond: Math.round(copyRate), cpuMicrosPerKey: +median(copyCpu).toFixed(2) },
        repair: { keysPerSecond: Math.round(repairRate), cpuMicrosPerKey: +median(repairCpu).toFixed(2) },
        repairOverCopy: +(repairRate / copyRate).toFixed(2),
        samples: { copy: copyRates.map(Math.round), repair: repairRates.map(Math.round) },
      },
      null,
      2,
    ),
  );
}

await main();
