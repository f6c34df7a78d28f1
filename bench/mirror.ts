/**
 * How fast can memshift mirror? Co-located on this machine: a source
 * memcached, a 3-server target pool, `memshift mirror` (its own process,
 * capturing on lo with tcpdump), and a load generator (this process) setting
 * 100-byte values at fixed rates. For each rate: the share of acknowledged
 * mutations applied to the new pool, lag p99, and the mirror's peak memory;
 * then the highest rate with at least 99.99% applied. Side by side: the rate
 * at which the same generator writes to the target pool directly (the
 * physical limit here). Prints JSON.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startMemcached, type MemcachedServer } from '../src/jobs/local-memcached.js';
import { MemcachedClient } from '../src/net/client.js';

const BIN = fileURLToPath(new URL('../../bin/memshift.js', import.meta.url));
const RATES = (process.env['MIRROR_BENCH_RATES'] ?? '25000,50000,100000,150000').split(',').map(Number);
const SECONDS = Number(process.env['MIRROR_BENCH_SECONDS'] ?? 5);
/** MIRROR_BENCH_IMMEDIATE=1: capture with immediate packet delivery (`mirror --immediate`). */
const IMMEDIATE = process.env['MIRROR_BENCH_IMMEDIATE'] === '1';
const KEYS = 100_000;
const VALUE = Buffer.alloc(100, 'v');
/** Requests in flight at once: enough to pipeline deeply, few enough not to queue for seconds. */
const MAX_IN_FLIGHT = 4000;

interface LoadResult {
  offered: number;
  stored: number;
  seconds: number;
}

/** Sets at `rate` per second for `seconds` (bounded: stops by itself), over 8 pipelined connections. */
async function load(addresses: string[], rate: number, seconds: number): Promise<LoadResult> {
  const clients = addresses.map((a) => new MemcachedClient(a, { connections: 8, maxPending: 50_000 }));
  let offered = 0;
  let stored = 0;
  let inFlight = 0;
  const started = Date.now();
  const end = started + seconds * 1000;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = Date.now();
      const due = Math.min(rate * seconds, Math.floor(((now - started) / 1000) * rate));
      while (offered < due && inFlight < MAX_IN_FLIGHT) {
        const i = offered++;
        inFlight++;
        const client = clients[i % clients.length] as MemcachedClient;
        client
          .set(`bench:${i % KEYS}`, VALUE, { exptime: 600 })
          .then((r) => {
            if (r === 'STORED') stored++;
          })
          .catch(() => undefined)
          .finally(() => inFlight--);
      }
      if (now >= end + 10_000 || (offered >= rate * seconds && inFlight === 0)) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
  const took = (Date.now() - started) / 1000;
  await Promise.all(clients.map((c) => c.close()));
  return { offered, stored, seconds: took };
}

function rssOf(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

interface MirrorRun {
  rate: number;
  offered: number;
  stored: number;
  achievedRate: number;
  applied: number;
  appliedShare: number;
  dropped: number;
  kernelDrops: number;
  lagP99Ms: number;
  peakRssMb: number;
}

async function mirrorAt(
  source: MemcachedServer,
  targets: MemcachedServer[],
  rate: number,
): Promise<MirrorRun> {
  const pool = targets.map((t) => t.address).join(',');
  const proc = spawn(
    process.execPath,
    [
      BIN,
      'mirror',
      '-i',
      'lo',
      '--port',
      String(source.port),
      '--to',
      pool,
      '--no-fill',
      '--duration',
      String(SECONDS + 6),
      '--drain',
      '20',
      '--max-queue',
      '1000000',
      '--json',
      ...(IMMEDIATE ? ['--immediate'] : []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, rssOf(proc.pid ?? 0))), 200);
  await new Promise((resolve) => setTimeout(resolve, 2500));
  const result = await load([source.address], rate, SECONDS);
  await new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  clearInterval(sampler);
  const summary = JSON.parse(stdout) as {
    kernel?: { droppedByKernel?: number };
    routes: { replay: { applied: number; dropped: number; lag: { p99: number } } }[];
  };
  const replay = summary.routes[0]!.replay;
  return {
    rate,
    offered: result.offered,
    stored: result.stored,
    achievedRate: Math.round(result.offered / result.seconds),
    applied: replay.applied,
    appliedShare: result.stored ? Math.min(1, replay.applied / result.stored) : 0,
    dropped: replay.dropped,
    kernelDrops: summary.kernel?.droppedByKernel ?? 0,
    lagP99Ms: replay.lag.p99,
    peakRssMb: Math.round(peak / 1e5) / 10,
  };
}

const source = await startMemcached({ memoryMb: 512 });
const targets = [
  await startMemcached({ memoryMb: 256 }),
  await startMemcached({ memoryMb: 256 }),
  await startMemcached({ memoryMb: 256 }),
];
try {
  const direct = await load(
    targets.map((t) => t.address),
    1_000_000,
    SECONDS,
  );
  const runs: MirrorRun[] = [];
  for (const rate of RATES) {
    const run = await mirrorAt(source, targets, rate);
    runs.push(run);
    if (run.appliedShare < 0.9999) break;
  }
  const passing = runs.filter((r) => r.appliedShare >= 0.9999);
  console.log(
    JSON.stringify(
      {
        bench: 'mirror',
        node: process.version,
        valueBytes: VALUE.length,
        secondsPerRate: SECONDS,
        immediate: IMMEDIATE,
        directToTargetsSetsPerSecond: Math.round(direct.stored / direct.seconds),
        runs,
        highestRateWith9999Applied: passing.length ? Math.max(...passing.map((r) => r.achievedRate)) : 0,
      },
      null,
      2,
    ),
  );
} finally {
  await Promise.all([source, ...targets].map((s) => s.stop()));
}
