/**
 * Replay throughput: set operations with 100-byte values applied to local
 * memcached targets (one server, then a 3-server ketama pool) by one
 * Replayer, in this one process, as the mirror runs it.
 *
 * - `max`: operations offered as fast as the replayer's queues take them
 *   (the offering side waits while more than half the queue is in use), so
 *   the figure is what the replayer and the target can apply per second;
 * - `paced`: an open loop at a fixed rate (1,000 operations every 10 ms), as
 *   a capture delivers them; checks that nothing is dropped at that rate.
 *
 * Every run must apply 100% (applied === offered, nothing dropped or failed).
 * Prints one JSON object: per case, the median of 3 runs of mutations/s,
 * lag p99 (capture time to the target's confirmation) and peak RSS.
 *
 *   npx tsc -p . && node dist/bench/replay.js
 */
import { startMemcached, type MemcachedServer } from '../src/jobs/local-memcached.js';
import type { Operation } from '../src/ops/operation.js';
import { Replayer } from '../src/replay/replayer.js';
import { parsePoolSpec } from '../src/topology/pool.js';

const RUNS = 3;
const MAX_OPS = 1_000_000;
const PACED_RATE = 100_000;
const PACED_SECONDS = 5;
const KEYS = 100_000;
const QUEUE = 65536;
const VALUE = Buffer.alloc(100, 0x61);
const keys = Array.from({ length: KEYS }, (_, i) => Buffer.from(`bench:key:${i}`));

function setOp(i: number, nowMicros: number): Operation {
  return {
    command: 'set',
    key: keys[i % KEYS]!,
    value: VALUE,
    flags: 0,
    exptime: 0,
    delta: undefined,
    number: undefined,
    outcome: 'stored',
    protocol: 'text',
    connection: 1,
    timestampMicros: nowMicros,
    name: undefined,
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Run {
  opsPerSecond: number;
  lagP99Ms: number;
  rssMB: number;
}

function check(replayer: Replayer, offered: number): void {
  const c = replayer.counters;
  if (c.applied !== offered || c.dropped !== 0 || c.failed !== 0) {
    throw new Error(`not 100% applied: ${JSON.stringify(c)}`);
  }
}

async function runMax(servers: MemcachedServer[]): Promise<Run> {
  const replayer = new Replayer({ target: pool(servers), maxQueuedPerServer: QUEUE });
  const limit = (QUEUE * servers.length) / 2;
  let peakRss = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < MAX_OPS;) {
    while (replayer.backlog > limit) await tick();
    const now = Date.now() * 1000;
    for (const end = Math.min(MAX_OPS, i + 2000); i < end; i++) replayer.apply(setOp(i, now));
    if ((i & 0xffff) === 0) peakRss = Math.max(peakRss, process.memoryUsage.rss());
    await tick();
  }
  if (!(await replayer.drain(60_000))) throw new Error('drain timed out');
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  check(replayer, MAX_OPS);
  const lag = replayer.counters.lag.p99;
  await replayer.close();
  return {
    opsPerSecond: Math.round(MAX_OPS / seconds),
    lagP99Ms: round(lag),
    rssMB: round(peakRss / 2 ** 20),
  };
}

async function runPaced(servers: MemcachedServer[]): Promise<Run> {
  const replayer = new Replayer({ target: pool(servers), maxQueuedPerServer: QUEUE });
  const perTick = PACED_RATE / 100;
  const total = PACED_RATE * PACED_SECONDS;
  let peakRss = 0;
  const start = Date.now();
  let i = 0;
  for (let slot = 0; i < total; slot++) {
    // Catch up to where a steady 10 ms cadence would be, as a capture delivering in bursts does.
    const due = Math.min(total, Math.floor(((Date.now() - start) / 10 + 1) * perTick));
    const now = Date.now() * 1000;
    for (; i < due; i++) replayer.apply(setOp(i, now));
    if (slot % 50 === 0) peakRss = Math.max(peakRss, process.memoryUsage.rss());
    await sleep(10);
  }
  if (!(await replayer.drain(60_000))) throw new Error('drain timed out');
  const seconds = (Date.now() - start) / 1000;
  check(replayer, total);
  const lag = replayer.counters.lag.p99;
  await replayer.close();
  return { opsPerSecond: Math.round(total / seconds), lagP99Ms: round(lag), rssMB: round(peakRss / 2 ** 20) };
}

function pool(servers: MemcachedServer[]): ReturnType<typeof parsePoolSpec> {
  return parsePoolSpec(servers.map((s) => s.address).join(','), 'libmemcached-ketama', { name: 'bench' });
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

function median(runs: Run[]): Run & { runs: number[] } {
  const pick = (f: (r: Run) => number): number => {
    const sorted = runs.map(f).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  };
  return {
    opsPerSecond: pick((r) => r.opsPerSecond),
    lagP99Ms: pick((r) => r.lagP99Ms),
    rssMB: pick((r) => r.rssMB),
    runs: runs.map((r) => r.opsPerSecond),
  };
}

async function main(): Promise<void> {
  const servers: MemcachedServer[] = [];
  try {
    for (let i = 0; i < 3; i++) servers.push(await startMemcached({ memoryMb: 256 }));
    const results: Record<string, unknown> = {
      valueBytes: VALUE.length,
      keys: KEYS,
      runs: RUNS,
    };
    for (const [name, targets] of [
      ['1 server', servers.slice(0, 1)],
      ['3-server ketama pool', servers],
    ] as const) {
      const max: Run[] = [];
      const paced: Run[] = [];
      for (let r = 0; r < RUNS; r++) max.push(await runMax([...targets]));
      for (let r = 0; r < RUNS; r++) paced.push(await runPaced([...targets]));
      results[name] = {
        max: { operations: MAX_OPS, ...median(max) },
        [`paced ${PACED_RATE}/s`]: { operations: PACED_RATE * PACED_SECONDS, ...median(paced) },
      };
    }
    console.log(JSON.stringify(results, null, 2));
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

await main();
