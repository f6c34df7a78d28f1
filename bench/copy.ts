/**
 * Copy and verify throughput against real memcached on this machine, beside
 * the physical limit measured in the same run: memcached's own pipelined
 * get and set rates (pre-built `mg ... q` / `ms ... q` batches written raw
 * to a socket, nothing parsed but the closing `MN`). The copy runs three
 * ways, each run: guarded (the default), with `guard: false` (no second
 * look at the source, no take-back: what the guard costs), and guarded again
 * beside a writer deleting and rewriting keys on both pools (bench/copy-writer.ts).
 * Copy rates count the listing; beside each, this process's CPU time per
 * key, which moves less than a rate when others share the machine. Then
 * memory: the peak resident size of a process copying 10 million keys.
 *
 * Prints one JSON object; rates are medians of `runs` runs.
 *
 *   npx tsc -p . && node dist/bench/copy.js [keys=1000000] [memoryKeys=10000000] [runs=3] [writerOps=4000]
 *
 * `memoryKeys` 0 skips the memory run; `writerOps` is the writer's deletes
 * plus rewrites per second, 0 skips the writer's copy.
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { runCopy, type CopyReport } from '../src/jobs/copy.js';
import { startMemcached, type MemcachedServer } from '../src/jobs/local-memcached.js';
import { runVerify } from '../src/jobs/verify.js';
import { MemcachedClient } from '../src/net/client.js';
import { parsePoolSpec, type Pool } from '../src/topology/pool.js';
import { ConcurrentWriter } from './copy-writer.js';

const BATCH = 1000;
const CONNECTIONS = 2;
const MN_LINE = Buffer.from('MN\r\n');
/** Longest a copy may take before the bench gives up on it. */
const COPY_DEADLINE_MS = 180_000;

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

/**
 * Writes the batches over a few connections, each waiting for its MN before
 * the next few. Gives up after `deadlineMs` rather than wait for ever.
 */
async function blast(address: string, work: Buffer[], deadlineMs = 120_000): Promise<number> {
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
  let late = false;
  const wakes = new Set<() => void>();
  const timer = setTimeout(() => {
    late = true;
    for (const s of sockets) s.destroy();
    for (const w of wakes) w();
  }, deadlineMs);
  try {
    await Promise.all(
      sockets.map(async (socket, c) => {
        const mine = work.filter((_, i) => i % CONNECTIONS === c);
        let waiting = 0;
        let tail = Buffer.alloc(0);
        let wake: (() => void) | undefined;
        const wait = async (): Promise<void> => {
          let woken: () => void = () => undefined;
          await new Promise<void>((resolve) => {
            wake = woken = resolve;
            wakes.add(resolve);
          });
          wakes.delete(woken);
          if (late) throw new Error(`${address}: no reply within ${deadlineMs} ms`);
        };
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
          while (waiting >= 8) await wait();
          waiting++;
          socket.write(batch);
        }
        while (waiting > 0) await wait();
        socket.destroy();
      }),
    );
  } finally {
    clearTimeout(timer);
  }
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
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10 * COPY_DEADLINE_MS);
  await new Promise((resolve) => proc.once('exit', resolve));
  clearTimeout(timer);
  return JSON.parse(out) as { copied: number; keysPerSecond: number; peakRssBytes: number };
}

/** A copy that must finish within `COPY_DEADLINE_MS` (an aborted copy fails the bench). */
async function copyOnce(
  from: Pool,
  to: Pool,
  guard: boolean,
): Promise<CopyReport & { cpuMicrosPerKey: number }> {
  const cpu = process.cpuUsage();
  const report = await runCopy({ from, to, guard, signal: AbortSignal.timeout(COPY_DEADLINE_MS) });
  const used = process.cpuUsage(cpu);
  return { ...report, cpuMicrosPerKey: (used.user + used.system) / Math.max(1, report.done) };
}

/** Empties the target and waits out the second flush_all counts in (an item set in it would be flushed too). */
async function emptyTarget(target: MemcachedServer): Promise<void> {
  await flush(target);
  await new Promise((resolve) => setTimeout(resolve, 1100));
}

interface WriterRun {
  keysPerSecond: number;
  cpuMicrosPerKey: number;
  copied: number;
  changedDuringCopy: number;
  exists: number;
  vanished: number;
  writerOps: number;
  writerOpsPerSecond: number;
  writerKeysTouched: number;
  staleOnTarget: number;
}

/** The guarded copy with a writer deleting and rewriting keys on both pools while it runs. */
async function copyWithWriter(
  source: MemcachedServer,
  target: MemcachedServer,
  from: Pool,
  to: Pool,
  keys: number,
  opsPerSecond: number,
): Promise<WriterRun> {
  const writer = new ConcurrentWriter({
    source: source.address,
    target: target.address,
    keys,
    key,
    valueBytes: 100,
    opsPerSecond,
    maxMs: COPY_DEADLINE_MS,
    maxOps: Math.ceil((opsPerSecond * COPY_DEADLINE_MS) / 1000),
  });
  try {
    writer.start();
    const report = await copyOnce(from, to, true).finally(() => writer.stop());
    const ops = await writer.stop();
    if (report.interrupted) throw new Error('copy with writer: interrupted');
    return {
      keysPerSecond: report.keysPerSecond,
      cpuMicrosPerKey: report.cpuMicrosPerKey,
      copied: report.copied,
      changedDuringCopy: report.skipped['changed-during-copy'],
      exists: report.skipped.exists,
      vanished: report.skipped.vanished,
      writerOps: ops.ops,
      writerOpsPerSecond: ops.opsPerSecond,
      writerKeysTouched: ops.keysTouched,
      staleOnTarget: await writer.stale(),
    };
  } finally {
    await writer.close();
  }
}

function ratio(a: number, b: number): number {
  return Number((a / b).toFixed(2));
}

function micros(value: number): number {
  return Number(value.toFixed(2));
}

async function main(): Promise<void> {
  const keys = Number(process.argv[2] ?? 1_000_000);
  const memoryKeys = Number(process.argv[3] ?? 10_000_000);
  const runs = Math.max(1, Number(process.argv[4] ?? 3));
  const writerOps = Number(process.argv[5] ?? 4000);
  const source = await startMemcached({ memoryMb: 4096 });
  const target = await startMemcached({ memoryMb: 4096 });
  try {
    const from = parsePoolSpec(source.address, 'ketama', { where: 'bench' });
    const to = parsePoolSpec(target.address, 'ketama', { where: 'bench' });
    const load = await loadKeys(source, keys, 100);
    const getWork = batches(keys, (i) => `mg ${key(i)} v f t q\r\n`);
    const setWork = batches(keys, (i) => `ms ${key(i)} 100 T0 F0 q\r\n`, Buffer.alloc(100, 0x62));
    const raw = { get: [] as number[], set: [] as number[] };
    const guarded: number[] = [];
    const unguarded: number[] = [];
    // This process's CPU time per key: steadier than a rate on a machine others are using.
    const cpuGuarded: number[] = [];
    const cpuUnguarded: number[] = [];
    const verify: number[] = [];
    const writes: WriterRun[] = [];
    // One copy not counted, so the first measured one does not pay for the JIT's warm-up.
    await copyOnce(from, to, true);
    for (let run = 0; run < runs; run++) {
      raw.get.push((keys / (await blast(source.address, getWork))) * 1000);
      await flush(target);
      raw.set.push((keys / (await blast(target.address, setWork))) * 1000);
      // Guarded and unguarded take turns going first, so neither always gets the fresher machine.
      for (const guard of run % 2 === 0 ? [true, false] : [false, true]) {
        await emptyTarget(target);
        const report = await copyOnce(from, to, guard);
        if (report.copied !== keys) throw new Error(`copied ${report.copied} of ${keys} (guard ${guard})`);
        (guard ? guarded : unguarded).push(report.keysPerSecond);
        (guard ? cpuGuarded : cpuUnguarded).push(report.cpuMicrosPerKey);
        if (guard) {
          const check = await runVerify({ from, to, checkPlacement: false });
          if (check.keys.coverage !== 1) throw new Error(`verify coverage ${check.keys.coverage}`);
          verify.push(check.keysPerSecond);
        }
      }
      if (writerOps > 0) {
        await emptyTarget(target);
        const w = await copyWithWriter(source, target, from, to, keys, writerOps);
        if (w.staleOnTarget > 0) throw new Error(`copy with writer: ${w.staleOnTarget} stale keys on target`);
        writes.push(w);
      }
    }
    const get = median(raw.get);
    const set = median(raw.set);
    // A copy does one get and one set per key: the raw limit is both, back to back.
    const rawCopy = 1 / (1 / get + 1 / set);
    const copyRate = median(guarded);
    const bareRate = median(unguarded);
    let withWriter: object = { skipped: 'writerOps=0' };
    if (writes.length > 0) {
      const rate = median(writes.map((w) => w.keysPerSecond));
      const mid = (pick: (w: WriterRun) => number): number => median(writes.map(pick));
      withWriter = {
        keysPerSecond: Math.round(rate),
        shareOfRaw: ratio(rate, rawCopy),
        overQuietGuarded: ratio(rate, copyRate),
        cpuMicrosPerKey: micros(mid((w) => w.cpuMicrosPerKey)),
        writerOps: mid((w) => w.writerOps),
        writerOpsPerSecond: mid((w) => w.writerOpsPerSecond),
        writerKeysTouched: mid((w) => w.writerKeysTouched),
        copied: mid((w) => w.copied),
        changedDuringCopy: mid((w) => w.changedDuringCopy),
        exists: mid((w) => w.exists),
        vanished: mid((w) => w.vanished),
        staleOnTarget: Math.max(...writes.map((w) => w.staleOnTarget)),
        perRun: writes.map((w) => ({
          keysPerSecond: Math.round(w.keysPerSecond),
          writerOps: w.writerOps,
          changedDuringCopy: w.changedDuringCopy,
        })),
      };
    }
    let memory: object = { skipped: 'memoryKeys=0' };
    if (memoryKeys > 0) {
      await flush(source);
      await emptyTarget(target);
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
      runs,
      cpus: (await import('node:os')).cpus().length,
      loadKeysPerSecond: Math.round(load),
      raw: {
        getKeysPerSecond: Math.round(get),
        setKeysPerSecond: Math.round(set),
        getThenSetKeysPerSecond: Math.round(rawCopy),
      },
      copyKeysPerSecond: Math.round(copyRate),
      copyShareOfRaw: ratio(copyRate, rawCopy),
      copy: {
        guarded: {
          keysPerSecond: Math.round(copyRate),
          shareOfRaw: ratio(copyRate, rawCopy),
          cpuMicrosPerKey: micros(median(cpuGuarded)),
        },
        unguarded: {
          keysPerSecond: Math.round(bareRate),
          shareOfRaw: ratio(bareRate, rawCopy),
          cpuMicrosPerKey: micros(median(cpuUnguarded)),
        },
        guardedOverUnguarded: ratio(copyRate, bareRate),
        // The guard's cost in this process's CPU per key (1.1: the guarded copy uses 10% more).
        cpuGuardedOverUnguarded: ratio(median(cpuGuarded), median(cpuUnguarded)),
        perRun: { guarded: guarded.map(Math.round), unguarded: unguarded.map(Math.round) },
      },
      withWriter,
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
