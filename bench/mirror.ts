/**
 * How fast and how exactly can memshift mirror? Co-located on this machine: a
 * source memcached, a 3-server target pool, `memshift mirror` (its own
 * process, capturing on lo), and a load generator (this process).
 * Cases, in one run:
 *  - set:  100-byte sets at fixed rates (MIRROR_BENCH_RATES);
 *  - big:  10 KB sets (MIRROR_BENCH_BIG_RATE);
 *  - mix:  90% get / 10% set over keys the source already holds, at fixed
 *          rates and at the generator's highest rate ("max") (MIRROR_BENCH_MIX_RATES).
 * Every write carries a unique value. After each run every key written in it
 * is read from the source and from the target server the pool's hashing
 * places it on: correct share, stale values (target differs), missing keys
 * (source has, target lacks); and kernel drops, stream gaps, lag p50/p99, CPU
 * seconds (memshift's own, and its capture program's) and peak RSS of memshift. Each case runs
 * MIRROR_BENCH_REPEAT times in each capture mode (MIRROR_BENCH_MODES, alternating: `helper` is
 * memshift-capture, `batched` and `immediate` are tcpdump's two delivery modes); medians are reported. tcpcopy is not packaged for
 * Debian and is not compared here. Prints JSON.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startMemcached, type MemcachedServer } from '../src/jobs/local-memcached.js';
import { MemcachedClient } from '../src/net/client.js';
import { parsePoolSpec, type Pool } from '../src/topology/pool.js';

const BIN = fileURLToPath(new URL('../../bin/memshift.js', import.meta.url));
const list = (name: string, fallback: string): string[] =>
  (process.env[name] ?? fallback).split(',').filter((s) => s !== '');
const RATES = list('MIRROR_BENCH_RATES', '10000,25000,50000,100000,150000').map(Number);
const BIG_RATE = Number(process.env['MIRROR_BENCH_BIG_RATE'] ?? 10000);
const MIX_RATES = list('MIRROR_BENCH_MIX_RATES', '50000,100000,max');
const SECONDS = Number(process.env['MIRROR_BENCH_SECONDS'] ?? 5);
const REPEAT = Number(process.env['MIRROR_BENCH_REPEAT'] ?? 3);
/** Capture modes compared side by side, and the mirror arguments each one means. */
const MODES = list('MIRROR_BENCH_MODES', 'helper,batched,immediate');
const MODE_ARGS: Record<string, string[]> = {
  helper: ['--capture-program', 'helper'],
  batched: ['--capture-program', 'tcpdump', '--batched'],
  immediate: ['--capture-program', 'tcpdump', '--immediate'],
};
/** Extra `memshift mirror` arguments (e.g. `--capture-rate 160000`), split on spaces. */
const EXTRA = list('MIRROR_BENCH_ARGS', '').flatMap((a) => a.split(' '));
/** Node options for the mirror process (e.g. `--cpu-prof`), split on spaces. */
const NODE_ARGS = list('MIRROR_BENCH_NODE_ARGS', '').flatMap((a) => a.split(' '));
const KEYS = 100_000;
/** Requests in flight at once: enough to pipeline deeply, few enough not to queue for seconds. */
const MAX_IN_FLIGHT = 4000;
const CLK_TCK = 100;

interface Case {
  readonly name: 'set' | 'big' | 'mix';
  /** Operations per second, or Infinity for as fast as the generator goes. */
  readonly rate: number;
  readonly valueBytes: number;
  /** Share of operations that are sets (the rest get keys the source holds). */
  readonly setShare: number;
}

interface LoadResult {
  offered: number;
  sets: number;
  seconds: number;
  written: Uint8Array;
}

function valueFor(n: number, bytes: number): Buffer {
  const value = Buffer.alloc(bytes, 'v');
  value.write(`${n}:`);
  return value;
}

/** Operations at `rate` per second for `seconds` (bounded in count and time), over 8 pipelined connections. */
async function load(address: string, c: Case, run: number): Promise<LoadResult> {
  const client = new MemcachedClient(address, { connections: 8, maxPending: 50_000 });
  const written = new Uint8Array(KEYS);
  const limit = Number.isFinite(c.rate) ? c.rate * SECONDS : Infinity;
  let offered = 0;
  let sets = 0;
  let inFlight = 0;
  const started = Date.now();
  const end = started + SECONDS * 1000;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = Date.now();
      const due = Math.min(limit, now >= end ? limit : ((now - started) / 1000) * c.rate);
      while (now < end && offered < due && inFlight < MAX_IN_FLIGHT) {
        const i = offered++;
        inFlight++;
        const key = (i * 2654435761) % KEYS;
        const isSet = c.setShare >= 1 || i % Math.round(1 / c.setShare) === 0;
        const done = (): void => void inFlight--;
        if (isSet) {
          sets++;
          written[key] = 1;
          client
            .set(`bench:${key}`, valueFor(run * 1e8 + i, c.valueBytes), { exptime: 600 })
            .then(done, done);
        } else {
          client.get(`bench:${key}`).then(done, done);
        }
      }
      // Bounded: stops offering at `end`, waits at most 10 s more for replies.
      if (now >= end + 10_000 || (now >= end && inFlight === 0)) {
        clearInterval(timer);
        resolve();
      }
    }, 2);
  });
  const took = (Date.now() - started) / 1000;
  await client.close();
  return { offered, sets, seconds: Math.min(took, SECONDS), written };
}

/** Every key written: same value on the source and on the target server that owns it? */
async function check(
  source: MemcachedServer,
  targetPool: Pool,
  written: Uint8Array,
): Promise<{ keys: number; correct: number; stale: number; missing: number; extra: number }> {
  const src = new MemcachedClient(source.address, { connections: 1 });
  const dst = targetPool.servers.map((s) => new MemcachedClient(s.address, { connections: 1 }));
  const r = { keys: 0, correct: 0, stale: 0, missing: 0, extra: 0 };
  const keys: Buffer[] = [];
  for (let k = 0; k < KEYS; k++) if (written[k]) keys.push(Buffer.from(`bench:${k}`));
  for (let i = 0; i < keys.length; i += 200) {
    const batch = keys.slice(i, i + 200);
    const have = new Map((await src.getMany(batch)).map((it) => [it.key.toString(), it.value]));
    const byServer = dst.map(() => [] as Buffer[]);
    for (const k of batch) byServer[targetPool.distribution.serverFor(k)]!.push(k);
    const got = new Map<string, Buffer>();
    for (const [j, ks] of byServer.entries()) {
      if (ks.length) for (const it of await dst[j]!.getMany(ks)) got.set(it.key.toString(), it.value);
    }
    for (const k of batch) {
      const a = have.get(k.toString());
      const b = got.get(k.toString());
      if (a === undefined) {
        if (b !== undefined) r.extra++;
        continue;
      }
      r.keys++;
      if (b === undefined) r.missing++;
      else if (a.equals(b)) r.correct++;
      else r.stale++;
    }
  }
  await Promise.all([src, ...dst].map((c) => c.close()));
  return r;
}

/** utime+stime in seconds of a process, and of its children (tcpdump), while it runs. */
function cpuOf(pid: number): { self: number; children: number } {
  const one = (p: string): number => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    } catch {
      return 0; // exited between listing and reading
    }
  };
  let children = 0;
  try {
    for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)) {
      if (child) children += one(child);
    }
  } catch {
    // exited
  }
  return { self: one(String(pid)), children };
}

function rssOf(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

interface Summary {
  kernel?: { droppedByKernel?: number };
  capture: { flows: { gaps: number } };
  routes: { replay: { applied: number; dropped: number; lag: { p50: number; p99: number } } }[];
}

interface Run {
  offeredPerSecond: number;
  setsPerSecond: number;
  correctShare: number;
  stale: number;
  missing: number;
  extra: number;
  kernelDrops: number;
  streamGaps: number;
  dropped: number;
  lagP50Ms: number;
  lagP99Ms: number;
  cpuSeconds: number;
  tcpdumpCpuSeconds: number;
  peakRssMb: number;
  exitCode: number | null;
}

async function mirrorRun(
  source: MemcachedServer,
  targets: MemcachedServer[],
  c: Case,
  mode: string,
  run: number,
): Promise<Run> {
  const spec = targets.map((t) => t.address).join(',');
  const proc = spawn(
    process.execPath,
    [
      ...NODE_ARGS,
      BIN,
      'mirror',
      '-i',
      'lo',
      '--port',
      String(source.port),
      '--to',
      spec,
      '--no-fill',
      '--duration',
      '120',
      '--drain',
      '20',
      '--max-queue',
      '1000000',
      '--json',
      ...(MODE_ARGS[mode] ?? [`--${mode}`]),
      ...EXTRA,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let peak = 0;
  let cpu = 0;
  let tcpdumpCpu = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssOf(proc.pid ?? 0));
    const now = cpuOf(proc.pid ?? 0);
    cpu = Math.max(cpu, now.self);
    tcpdumpCpu = Math.max(tcpdumpCpu, now.children);
  }, 100);
  // Capture is running once memshift says so (bounded: 20 s).
  for (let i = 0; i < 200 && !/capturing on/.test(stderr); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const result = await load(source.address, c, run);
  proc.kill('SIGINT');
  const exitCode = await exited;
  clearInterval(sampler);
  let summary: Summary;
  try {
    summary = JSON.parse(stdout) as Summary;
  } catch {
    throw new Error(`mirror printed no summary (exit ${exitCode}): ${stderr.slice(-500)}`);
  }
  const replay = summary.routes[0]!.replay;
  const pool = parsePoolSpec(spec, 'ketama');
  const checked = await check(source, pool, result.written);
  return {
    offeredPerSecond: Math.round(result.offered / result.seconds),
    setsPerSecond: Math.round(result.sets / result.seconds),
    correctShare: checked.keys ? checked.correct / checked.keys : 0,
    stale: checked.stale,
    missing: checked.missing,
    extra: checked.extra,
    kernelDrops: summary.kernel?.droppedByKernel ?? 0,
    streamGaps: summary.capture.flows.gaps,
    dropped: replay.dropped,
    lagP50Ms: replay.lag.p50,
    lagP99Ms: replay.lag.p99,
    cpuSeconds: Math.round(cpu * 100) / 100,
    tcpdumpCpuSeconds: Math.round(tcpdumpCpu * 100) / 100,
    peakRssMb: Math.round(peak / 1e5) / 10,
    exitCode,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function medians(runs: Run[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const field of Object.keys(runs[0]!) as (keyof Run)[]) {
    out[field] = median(runs.map((r) => Number(r[field])));
  }
  return out;
}

const cases: Case[] = [
  ...RATES.map((rate): Case => ({ name: 'set', rate, valueBytes: 100, setShare: 1 })),
  ...(BIG_RATE > 0 ? [{ name: 'big', rate: BIG_RATE, valueBytes: 10_240, setShare: 1 } as const] : []),
  ...MIX_RATES.map((r): Case => ({
    name: 'mix',
    rate: r === 'max' ? Infinity : Number(r),
    valueBytes: 100,
    setShare: 0.1,
  })),
];

const source = await startMemcached({ memoryMb: 1024 });
const targets = [
  await startMemcached({ memoryMb: 512 }),
  await startMemcached({ memoryMb: 512 }),
  await startMemcached({ memoryMb: 512 }),
];
try {
  // The mixed workload reads keys the source already holds (written before mirroring began).
  const preload = new MemcachedClient(source.address, { connections: 4 });
  for (let k = 0; k < KEYS; k += 1000) {
    const batch: Promise<unknown>[] = [];
    for (let j = k; j < k + 1000; j++) batch.push(preload.set(`bench:${j}`, valueFor(-1, 100)));
    await Promise.all(batch);
  }
  await preload.close();
  const results: {
    case: string;
    mode: string;
    rate: number | 'max';
    valueBytes: number;
    median: Record<string, number>;
    runs: Run[];
  }[] = [];
  let run = 0;
  for (const c of cases) {
    const byMode = new Map<string, Run[]>(MODES.map((m) => [m, []]));
    // Modes alternate run by run, so a change in the machine's load falls on both.
    for (let i = 0; i < REPEAT; i++) {
      for (const mode of MODES) byMode.get(mode)!.push(await mirrorRun(source, targets, c, mode, ++run));
    }
    for (const [mode, runs] of byMode) {
      const line = {
        case: c.name,
        mode,
        rate: Number.isFinite(c.rate) ? c.rate : ('max' as const),
        valueBytes: c.valueBytes,
      };
      results.push({ ...line, median: medians(runs), runs });
      process.stderr.write(`${JSON.stringify({ ...line, median: medians(runs) })}\n`);
    }
  }
  const clean = (name: Case['name'], mode: string): number =>
    Math.max(
      0,
      ...results
        .filter(
          (r) =>
            r.case === name &&
            r.mode === mode &&
            r.median['kernelDrops'] === 0 &&
            r.median['correctShare'] === 1,
        )
        .map((r) => r.median['offeredPerSecond']!),
    );
  console.log(
    JSON.stringify(
      {
        bench: 'mirror',
        node: process.version,
        secondsPerRun: SECONDS,
        repeat: REPEAT,
        mirrorArgs: EXTRA,
        tcpcopy: 'not compared: not packaged for Debian',
        highestSetRateAllCorrectNoDrops: Object.fromEntries(MODES.map((m) => [m, clean('set', m)])),
        highestMixedRateAllCorrectNoDrops: Object.fromEntries(MODES.map((m) => [m, clean('mix', m)])),
        results,
      },
      null,
      2,
    ),
  );
} finally {
  await Promise.all([source, ...targets].map((s) => s.stop()));
}
