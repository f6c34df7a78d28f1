/**
 * What does memshift proxy cost? One run, the same load on every target on
 * this machine, taken in turns so drift hits them alike:
 *   - memcached directly,
 *   - twemproxy (Debian `nutcracker`; scripts/install-bench-deps.sh) in front of it,
 *   - memshift proxy in front of it, shadowing off (a plain proxy),
 *   - memshift proxy in front of it, shadowing every mutation to a second memcached,
 *   - memshift proxy in dual mode (writes to both pools, the primary answers),
 *   - shadowing with that second memcached stopped (SIGSTOP): the primary path must not notice.
 * Load: memcaslap (libmemcached-tools, 90% get / 10% set, as it defaults) for
 * ops/s and loaded latency (p50/p90/p99 as the upper bound of its log2
 * histogram bucket); then a depth-1 client alone (bench/support/depth1.ts) for
 * p50/p99 at rest, and what each target adds to the direct p99. Each proxy
 * runs in its own process. Medians of PROXY_BENCH_RUNS rounds of
 * PROXY_BENCH_SECONDS each; the CPU time each serving process spent per
 * request. PROXY_BENCH_BASELINE=<another build's dist/bench/proxy.js> adds
 * that build's proxy, shadowing off and on, to the same run. Prints JSON.
 *
 *   node dist/bench/proxy.js
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { freePort, startMemcached } from '../src/jobs/local-memcached.js';
import { Proxy } from '../src/jobs/proxy.js';
import { parsePoolSpec } from '../src/topology/pool.js';
import { depth1 } from './support/depth1.js';

const RUNS = Number(process.env['PROXY_BENCH_RUNS'] ?? 3);
const SECONDS = Number(process.env['PROXY_BENCH_SECONDS'] ?? 5);
const THREADS = Number(process.env['PROXY_BENCH_THREADS'] ?? 2);
const CONCURRENCY = Number(process.env['PROXY_BENCH_CONCURRENCY'] ?? 32);
const DEPTH1_REQUESTS = Number(process.env['PROXY_BENCH_DEPTH1_REQUESTS'] ?? 20_000);
const DEPTH1_SECONDS = Number(process.env['PROXY_BENCH_DEPTH1_SECONDS'] ?? 4);
/** USER_HZ: /proc reports CPU time in these ticks (100 on Linux). */
const CLOCK_TICKS = 100;
/** Optional: another build's dist/bench/proxy.js, served beside this one as `baseline_*`. */
const BASELINE = process.env['PROXY_BENCH_BASELINE'];
const SELF = fileURLToPath(import.meta.url);

interface Sample {
  ops: number;
  avgUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  /**
   * CPU time (user and system) the serving process spent per request under
   * the load: what it costs, whatever else the machine's cores are doing.
   */
  cpuUsPerOp: number;
  /** From the depth-1 client, alone on the target after the load. */
  depth1P50Us: number;
  depth1P99Us: number;
}

/** Child mode: `proxy.js serve <shadow|plain|dual> <primary> <secondary>` runs a proxy until SIGTERM. */
async function serve(kind: string, primary: string, secondary: string): Promise<void> {
  const proxy = new Proxy({
    mode: kind === 'dual' ? 'dual' : 'shadow',
    shadow: kind === 'shadow',
    primary: parsePoolSpec(primary, 'ketama'),
    secondary: parsePoolSpec(secondary, 'ketama'),
    listen: { host: '127.0.0.1', port: 0 },
  });
  const { port } = await proxy.start();
  process.stdout.write(`${port}\n`);
  process.once('SIGTERM', () => {
    void proxy.stop(1000, 1000).then((status) => {
      process.stderr.write(JSON.stringify({ replay: status.replay, proxy: status.proxy }) + '\n');
      process.exit(0);
    });
  });
}

function runChild(
  cmd: string,
  args: string[],
  waitForLine: boolean,
): Promise<{ child: ChildProcess; line: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.on('error', reject);
    if (!waitForLine) {
      resolve({ child, line: '' });
      return;
    }
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, line: out.slice(0, nl) });
    });
    child.on('exit', (code) => reject(new Error(`${cmd} exited with ${code} before it was ready`)));
  });
}

async function stopChild(child: ChildProcess): Promise<string> {
  let err = '';
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  if (child.exitCode !== null) return err;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
  return err;
}

/** One memcaslap run against `address`; parses the total ops/s and the latency histogram. */
async function memcaslap(
  address: string,
): Promise<Omit<Sample, 'depth1P50Us' | 'depth1P99Us' | 'cpuUsPerOp'>> {
  const args = [
    '-s',
    address,
    '-t',
    `${SECONDS}s`,
    '-T',
    String(THREADS),
    '-c',
    String(CONCURRENCY),
    '-S',
    `${SECONDS}s`,
  ];
  const child = spawn('memcaslap', args, { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), (SECONDS + 30) * 1000);
  await new Promise<void>((resolve) => child.once('exit', () => resolve()));
  clearTimeout(timer);
  const tps = /Run time: [\d.]+s Ops: \d+ TPS: (\d+)/.exec(out);
  const total = out.slice(out.lastIndexOf('Total Statistics ('));
  const avg = /Avg:\s+(\d+)/.exec(total);
  if (!tps || !avg) throw new Error(`memcaslap output not understood:\n${out.slice(-2000)}`);
  // Log2 Dist rows: "<b>: n n n n" counts for buckets 2^b .. 2^(b+3) microseconds.
  const buckets: number[] = [];
  for (const m of total.matchAll(/^\s+(\d+):((?:\s+\d+)+)\s*$/gm)) {
    const base = Number(m[1]);
    (m[2] ?? '')
      .trim()
      .split(/\s+/)
      .forEach((n, i) => (buckets[base + i] = Number(n)));
  }
  const count = buckets.reduce((a, b) => a + (b ?? 0), 0);
  const percentile = (q: number): number => {
    let seen = 0;
    for (let b = 0; b < buckets.length; b++) {
      seen += buckets[b] ?? 0;
      if (seen >= q * count) return 2 ** (b + 1);
    }
    return NaN;
  };
  return {
    ops: Number(tps[1]),
    avgUs: Number(avg[1]),
    p50Us: percentile(0.5),
    p90Us: percentile(0.9),
    p99Us: percentile(0.99),
  };
}

function lastJson(text: string): unknown {
  const line = text.trim().split('\n').pop();
  try {
    return line ? (JSON.parse(line) as unknown) : null;
  } catch {
    return null;
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Waits (bounded) until something accepts connections on `port`. */
async function listening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    // A just-spawned nutcracker needs a moment to bind: poll every 50 ms, at most 5 s.
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

async function startTwemproxy(dir: string, primary: string): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const conf = join(dir, 'nutcracker.yml');
  writeFileSync(
    conf,
    [
      'bench:',
      `  listen: 127.0.0.1:${port}`,
      '  hash: fnv1a_64',
      '  distribution: ketama',
      '  timeout: 2000',
      '  auto_eject_hosts: false',
      '  servers:',
      `    - ${primary}:1`,
      '',
    ].join('\n'),
  );
  const statsPort = await freePort();
  const args = ['-c', conf, '-s', String(statsPort), '-a', '127.0.0.1', '-p', join(dir, 'nc.pid')];
  const { child } = await runChild('nutcracker', [...args, '-o', join(dir, 'nc.log')], false);
  await listening(port);
  return { child, port };
}

async function main(): Promise<void> {
  const primary = await startMemcached({ memoryMb: 256 });
  const secondary = await startMemcached({ memoryMb: 256 });
  const dir = mkdtempSync(join(tmpdir(), 'memshift-bench-proxy-'));
  const children: ChildProcess[] = [];
  try {
    const twem = await startTwemproxy(dir, primary.address);
    children.push(twem.child);
    const proxy = async (
      kind: string,
      to: string,
      script = SELF,
    ): Promise<{ child: ChildProcess; line: string }> => {
      const started = await runChild(process.execPath, [script, 'serve', kind, primary.address, to], true);
      children.push(started.child);
      return started;
    };
    const plain = await proxy('plain', secondary.address);
    const shadow = await proxy('shadow', secondary.address);
    const dual = await proxy('dual', secondary.address);
    const stoppedSecondary = await startMemcached({ memoryMb: 64 });
    stoppedSecondary.process.kill('SIGSTOP');
    children.push(stoppedSecondary.process);
    const shadowStopped = await proxy('shadow', stoppedSecondary.address);
    // Each target with the process that serves it, whose CPU time per request is measured.
    const targets: Record<string, [address: string, pid: number | undefined]> = {
      direct: [primary.address, primary.process.pid],
      twemproxy: [`127.0.0.1:${twem.port}`, twem.child.pid],
      memshift_shadow_off: [`127.0.0.1:${plain.line}`, plain.child.pid],
      memshift_shadow_on: [`127.0.0.1:${shadow.line}`, shadow.child.pid],
      memshift_dual: [`127.0.0.1:${dual.line}`, dual.child.pid],
      memshift_shadow_on_secondary_stopped: [`127.0.0.1:${shadowStopped.line}`, shadowStopped.child.pid],
    };
    if (BASELINE !== undefined) {
      // Another build's proxy (its dist/bench/proxy.js), for before and after in one run.
      const off = await proxy('plain', secondary.address, BASELINE);
      const on = await proxy('shadow', secondary.address, BASELINE);
      targets['baseline_shadow_off'] = [`127.0.0.1:${off.line}`, off.child.pid];
      targets['baseline_shadow_on'] = [`127.0.0.1:${on.line}`, on.child.pid];
    }
    const samples: Record<string, Sample[]> = {};
    for (let run = 0; run < RUNS; run++) {
      for (const [name, [address, pid]] of Object.entries(targets)) {
        const cpuBefore = cpuSeconds(pid);
        const load = await memcaslap(address);
        const cpu = cpuSeconds(pid) - cpuBefore;
        const latency = await depth1(address, DEPTH1_REQUESTS, DEPTH1_SECONDS);
        (samples[name] ??= []).push({
          ...load,
          cpuUsPerOp: round1((cpu * 1e6) / (load.ops * SECONDS)),
          depth1P50Us: latency.p50Us,
          depth1P99Us: latency.p99Us,
        });
      }
    }
    const result: Record<string, Sample> = {};
    for (const [name, list] of Object.entries(samples)) {
      const m = (pick: (s: Sample) => number): number => median(list.map(pick));
      result[name] = {
        ops: m((s) => s.ops),
        avgUs: m((s) => s.avgUs),
        p50Us: m((s) => s.p50Us),
        p90Us: m((s) => s.p90Us),
        p99Us: m((s) => s.p99Us),
        cpuUsPerOp: m((s) => s.cpuUsPerOp),
        depth1P50Us: m((s) => s.depth1P50Us),
        depth1P99Us: m((s) => s.depth1P99Us),
      };
    }
    const shadowReport = await stopChild(shadow.child);
    const stoppedReport = await stopChild(shadowStopped.child);
    stoppedSecondary.process.kill('SIGCONT');
    const twemOps = result['twemproxy']?.ops ?? NaN;
    const directP99 = result['direct']?.depth1P99Us ?? NaN;
    const vsTwemproxy: Record<string, number> = {};
    const addedDepth1P99Us: Record<string, number> = {};
    for (const [name, r] of Object.entries(result)) {
      if (name !== 'direct') addedDepth1P99Us[name] = round1(r.depth1P99Us - directP99);
      if (name !== 'direct' && name !== 'twemproxy') vsTwemproxy[name] = round3(r.ops / twemOps);
    }
    process.stdout.write(
      JSON.stringify(
        {
          bench: 'proxy',
          node: process.version,
          generator: `memcaslap -t ${SECONDS}s -T ${THREADS} -c ${CONCURRENCY} (90% get, 10% set)`,
          latencyClient: `one connection, depth 1, ${DEPTH1_REQUESTS} requests or ${DEPTH1_SECONDS}s (90% get, 10% set, 100-byte values)`,
          runs: RUNS,
          median: result,
          opsVsTwemproxy: vsTwemproxy,
          addedDepth1P99Us,
          stoppedSecondaryVsShadowOn: round3(
            (result['memshift_shadow_on_secondary_stopped']?.ops ?? NaN) /
              (result['memshift_shadow_on']?.ops ?? NaN),
          ),
          shadow: lastJson(shadowReport),
          shadowSecondaryStopped: lastJson(stoppedReport),
        },
        null,
        2,
      ) + '\n',
    );
  } finally {
    for (const child of children) {
      child.kill('SIGCONT');
      await stopChild(child);
    }
    await primary.stop();
    await secondary.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN when unknown. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name (which may hold spaces), from field 3 on: utime is 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

if (process.argv[2] === 'serve') {
  await serve(process.argv[3] ?? 'plain', process.argv[4] ?? '', process.argv[5] ?? '');
} else {
  await main();
}
