/**
 * `memshift mirror`: the command line of the mirror job (src/jobs/mirror.ts):
 * routes from options and pool files, a live status line, a summary at exit,
 * structured logs, and a clean stop on SIGINT/SIGTERM.
 */
import type { Command } from 'commander';
import { parseAddressRange, type AddressRange } from '../../capture/filter.js';
import { MirrorJob, type MirrorRoute, type MirrorSummary } from '../../jobs/mirror.js';
import { readFileSync } from 'node:fs';
import { parsePortRange, type PortRange } from '../../replay/two-way.js';
import type { Dashboard, DashboardSnapshot } from '../dashboard/server.js';
import { addWebOptions, serveWeb } from '../web.js';
import { loadPools, parsePoolSpec, resolvePool, type Pool } from '../../topology/pool.js';
import { formatTable } from '../format.js';
import { EventLog } from '../event-log.js';
import { captureProgramFrom, parseBytes, UsageError, type Output } from '../options.js';
import { Warnings } from '../warnings.js';

interface MirrorFlags {
  port: string[];
  to?: string;
  route: string[];
  map?: string;
  pools?: string;
  hash: string;
  interface: string;
  pcap?: string;
  speed: string;
  loop?: boolean;
  sourceHost: string;
  excludeClient: string[];
  fill: boolean;
  fillWindow: string;
  fillRate: string;
  includeReads?: boolean;
  sample?: string;
  flush: string;
  duration?: string;
  drain: string;
  json?: boolean;
  log?: string;
  maxQueue: string;
  maxRemembered: string;
  maxValue?: string;
  immediate?: boolean;
  batched?: boolean;
  captureBuffer?: string;
  captureRate?: string;
  captureProgram?: string;
  captureTimeout?: string;
  maxQueueBytes: string;
  maxPendingBytes: string;
  backfill?: boolean;
  backfillRate?: string;
  backfillMaxTtl?: string;
  web?: string;
  webAllowRemote?: boolean;
  twoWayPorts?: string;
  conflictWindow: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function registerMirror(program: Command, out: Output): void {
  addWebOptions(program.command('mirror'))
    .description('mirror live traffic of a source server to the new pool, protocol-aware (passive capture)')
    .option('--port <port>', 'source memcached port to capture (repeatable; default 11211)', collect, [])
    .option('--to <pool>', 'target pool for --port: a name from --pools or host:port[:weight],...')
    .option('--route <port=pool>', 'a source port and its own target pool (repeatable)', collect, [])
    .option('--map <host:port>', '1:1 map: everything from the source port goes to this one new server')
    .option('--pools <file>', 'YAML or JSON file of named pools')
    .option('--hash <name>', "distribution of inline pools: the application's client hashing", 'ketama')
    .option('-i, --interface <name>', 'interface to capture on', 'any')
    .option('--pcap <file>', 'replay a pcap or pcapng file instead of capturing live')
    .option('--speed <n>', 'with --pcap: replay at n times the recorded pace (0: as fast as possible)', '0')
    .option('--loop', 'with --pcap: replay the file again and again until stopped')
    .option(
      '--source-host <host>',
      "where the source answers memshift's own lookups (fill TTLs)",
      '127.0.0.1',
    )
    .option(
      '--exclude-client <addr[/bits]>',
      'leave out traffic from these clients (repeatable)',
      collect,
      [],
    )
    .option('--no-fill', 'do not fill the target with values read on the source')
    .option('--fill-window <seconds>', 'fill a key at most once per window', '60')
    .option('--fill-rate <n>', 'at most n fills per second (each asks the source for the TTL)', '2000')
    .option('--include-reads', 'also replay reads to the target (load testing; responses discarded)')
    .option('--sample <fraction>', 'mirror only this fraction of keys, chosen by key hash (e.g. 0.1)')
    .option('--flush <policy>', 'flush_all: skip (unless 1:1 --map) or all-targets', 'skip')
    .option('--duration <seconds>', 'stop by itself after this long')
    .option('--drain <seconds>', 'after capture stops, let queued writes finish for at most this long', '5')
    .option(
      '--max-queue <n>',
      'writes queued per target server before dropping (and remembering the key)',
      '100000',
    )
    .option('--max-remembered <n>', 'dropped keys remembered for invalidation per route', '1000000')
    .option(
      '--max-queue-bytes <bytes>',
      'bytes all queued writes to the new pools may hold (beyond: dropped, key remembered)',
      '256m',
    )
    .option(
      '--max-pending-bytes <bytes>',
      'bytes captured values may hold while awaiting their replies (beyond: the key is invalidated)',
      '128m',
    )
    .option(
      '--max-value <bytes>',
      "largest value read from the capture (default: the sources' item_size_max); larger ones invalidate their key",
    )
    .option(
      '--backfill',
      'also copy what the source already holds, hottest first, guarded by the live mirror',
    )
    .option('--backfill-rate <n>', 'with --backfill: at most n keys per second')
    .option(
      '--backfill-max-ttl <seconds>',
      'with --backfill: cap the TTL written (keys without expiry get it too)',
    )
    .option(
      '--immediate',
      'immediate packet delivery: lag in milliseconds instead of up to 1 s; the ring holds fewer packets (see --capture-rate)',
    )
    .option(
      '--batched',
      'kernel delivers packets in batches (the default): up to 1 s of lag, a ring that holds more',
    )
    .option(
      '--capture-program <program>',
      'helper (memshift-capture: packets within milliseconds from a packed ring; the default when built) or tcpdump',
    )
    .option(
      '--capture-timeout <ms>',
      'memshift-capture: longest the kernel holds packets before handing them over (default 5)',
    )
    .option(
      '--capture-rate <packets>',
      'with --immediate: packets per second (both directions) the kernel ring is sized for: it holds 50 ms of them (default 80000)',
    )
    .option(
      '--capture-buffer <bytes>',
      "the capture program's kernel ring (-B); default: sized from the interface's MTU (immediate) or 64 MiB",
    )
    .option(
      '--two-way-ports <low-high>',
      'one side of a two-way pair: bind target connections to this local port range (the same on both sides, ' +
        "outside every host's ephemeral ports); connections from it are the peer mirror's: observed, never mirrored back",
    )
    .option(
      '--conflict-window <seconds>',
      'with --two-way-ports: a key written on both sides within this time is deleted on the target',
      '5',
    )
    .option('--json', 'print the summary at exit as JSON')
    .option('--log <file>', 'write structured logs (JSON lines) to this file')
    .addHelpText(
      'after',
      '\nNeeds memshift-capture (built by `npm run build` with libpcap-dev) or tcpdump, and the right to\n' +
        'capture (root, or cap_net_raw,cap_net_admin on the capture program).\n' +
        'Examples:\n' +
        '  memshift mirror --port 11211 --to 10.0.1.1:11211,10.0.1.2:11211 --hash ketama\n' +
        '  memshift mirror --pools pools.yaml --route 11211=data-new --route 11212=view-new\n' +
        '  memshift mirror --pcap traffic.pcap --speed 2 --to new --pools pools.yaml\n' +
        '  two-way for a rolling switch (one per side; see deploy/README.md):\n' +
        '    old server: memshift mirror --to new --pools pools.yaml --two-way-ports 20400-20499\n' +
        '    new server: memshift mirror --to old --pools pools.yaml --two-way-ports 20400-20499',
    )
    .action(async (flags: MirrorFlags) => {
      const log = new EventLog(flags.log);
      const warnings = new Warnings(
        (line) => process.stderr.write(line),
        (record) => log.event(record),
      );
      const job = new MirrorJob({
        onWarning: (message) => warnings.warn(message),
        routes: routesFrom(flags),
        sourceHost: flags.sourceHost,
        interface: flags.interface,
        pcapFile: flags.pcap,
        speed: number('--speed', flags.speed, 0),
        loop: flags.loop ?? false,
        excludeClients: flags.excludeClient.map(parseExclusion),
        durationMs:
          flags.duration === undefined ? undefined : number('--duration', flags.duration, 0.001) * 1000,
        drainMs: number('--drain', flags.drain, 0) * 1000,
        maxValueBytes: flags.maxValue === undefined ? undefined : parseBytes('--max-value', flags.maxValue),
        maxQueueBytes: parseBytes('--max-queue-bytes', flags.maxQueueBytes),
        immediate: immediateFrom(flags),
        captureProgram: captureProgramFrom(flags.captureProgram),
        captureTimeoutMs:
          flags.captureTimeout === undefined
            ? undefined
            : Math.round(number('--capture-timeout', flags.captureTimeout, 1)),
        tcpdumpBufferKiB:
          flags.captureBuffer === undefined
            ? undefined
            : Math.max(1, Math.ceil(parseBytes('--capture-buffer', flags.captureBuffer) / 1024)),
        capturePacketsPerSecond:
          flags.captureRate === undefined ? undefined : number('--capture-rate', flags.captureRate, 1),
        twoWay:
          flags.twoWayPorts === undefined
            ? undefined
            : {
                ports: twoWayPorts(flags.twoWayPorts),
                conflictWindowMs: number('--conflict-window', flags.conflictWindow, 0) * 1000,
              },
        maxPendingBytes: parseBytes('--max-pending-bytes', flags.maxPendingBytes),
        backfill: flags.backfill
          ? {
              ...(flags.backfillRate === undefined
                ? {}
                : { rate: number('--backfill-rate', flags.backfillRate, 1) }),
              ...(flags.backfillMaxTtl === undefined
                ? {}
                : { maxTtl: number('--backfill-max-ttl', flags.backfillMaxTtl, 1) }),
            }
          : undefined,
        replay: {
          fill: flags.fill,
          fillWindowMs: number('--fill-window', flags.fillWindow, 0) * 1000,
          fillRatePerSecond: number('--fill-rate', flags.fillRate, 0),
          includeReads: flags.includeReads ?? false,
          ...(flags.sample === undefined ? {} : { sample: fraction(flags.sample) }),
          flush: flushPolicy(flags.flush),
          maxQueuedPerServer: number('--max-queue', flags.maxQueue, 1),
          maxRememberedKeys: number('--max-remembered', flags.maxRemembered, 0),
        },
      });
      log.event({
        event: 'start',
        routes: job.summary().routes.map((r) => ({ port: r.sourcePort, target: r.target })),
      });
      const onSignal = (signal: string): void => {
        log.event({ event: 'signal', signal });
        void job.stop();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const status = new StatusLine(job, log);
      let dashboard: Dashboard | undefined;
      try {
        await job.start();
        // Live capture says it runs at once; a pcap replay's first word is its result (or its error).
        if (flags.pcap === undefined) {
          const started = startedLine(job);
          process.stderr.write(`${started}\n`);
          log.event({
            event: 'capturing',
            message: started,
            ...job.captureInfo(),
            limits: job.summary().limits,
          });
        }
        dashboard = await serveWeb(flags, 'mirror', () => mirrorSnapshot(job.summary()));
        if (dashboard) log.event({ event: 'web', url: dashboard.url });
        status.start();
        const summary = await job.done;
        status.stop();
        log.event({ event: 'summary', ...summary });
        out.write(flags.json ? JSON.stringify(summary, null, 2) : renderSummary(summary));
        if (summary.error) {
          process.stderr.write(`memshift: ${summary.error}\n`);
          out.exitCode = 2;
        } else if (!summary.drained || lostTraffic(summary)) {
          out.exitCode = 1;
        }
      } finally {
        status.stop();
        await dashboard?.close();
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
        await log.close();
      }
    });
}

function immediateFrom(flags: MirrorFlags): boolean {
  if (flags.batched && flags.immediate)
    throw new UsageError('give either --immediate or --batched, not both');
  return flags.immediate === true;
}

function routesFrom(flags: MirrorFlags): MirrorRoute[] {
  const pools = flags.pools ? loadPools(flags.pools) : undefined;
  const routes: MirrorRoute[] = [];
  const resolve = (spec: string, option: string): Pool =>
    resolvePool(spec, { pools, poolsFile: flags.pools, hash: flags.hash, option });
  const ports = flags.port.map((p) => port(p));
  if (flags.map !== undefined) {
    if (flags.to !== undefined) throw new UsageError('give either --to POOL or --map HOST:PORT, not both');
    const target = parsePoolSpec(flags.map, 'modula', { where: '--map', name: flags.map });
    if (target.servers.length !== 1)
      throw new UsageError('--map takes one new server (host:port) per source port');
    for (const p of ports.length ? ports : [11211]) routes.push({ sourcePort: p, target, mapped: true });
  } else if (flags.to !== undefined) {
    const target = resolve(flags.to, '--to');
    for (const p of ports.length ? ports : [11211]) routes.push({ sourcePort: p, target, mapped: false });
  } else if (ports.length > 0) {
    throw new UsageError('--port needs --to POOL or --map HOST:PORT');
  }
  for (const spec of flags.route) {
    const eq = spec.indexOf('=');
    if (eq < 1) throw new UsageError(`--route must be PORT=POOL, got "${spec}"`);
    routes.push({
      sourcePort: port(spec.slice(0, eq)),
      target: resolve(spec.slice(eq + 1), '--route'),
      mapped: false,
    });
  }
  if (routes.length === 0)
    throw new UsageError('mirror needs a target: --to POOL, --map HOST:PORT or --route PORT=POOL');
  const seen = new Set<number>();
  for (const r of routes) {
    if (seen.has(r.sourcePort)) throw new UsageError(`source port ${r.sourcePort} has two targets`);
    seen.add(r.sourcePort);
  }
  return routes;
}

function port(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > 65535) {
    throw new UsageError(`port must be a number from 1 to 65535, got "${text}"`);
  }
  return value;
}

function number(option: string, text: string, min: number): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < min) {
    throw new UsageError(`${option} must be a number of at least ${min}, got "${text}"`);
  }
  return value;
}

function fraction(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || value > 1) {
    throw new UsageError(`--sample must be a fraction above 0 and at most 1 (e.g. 0.1), got "${text}"`);
  }
  return value;
}

function flushPolicy(text: string): 'skip' | 'all-targets' {
  if (text === 'skip' || text === 'all-targets') return text;
  throw new UsageError(`--flush must be skip or all-targets, got "${text}"`);
}

/**
 * The two-way range, refused when it overlaps this host's ephemeral ports: an
 * application connection from such a port would be taken for the peer mirror
 * and not mirrored.
 */
function twoWayPorts(text: string): PortRange {
  let range: PortRange;
  try {
    range = parsePortRange(text);
  } catch (err) {
    throw new UsageError(`--two-way-ports: ${err instanceof Error ? err.message : String(err)}`);
  }
  let ephemeral: number[] = [];
  try {
    ephemeral = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
  } catch {
    // Not Linux: nothing to check here (the runbook asks for a range outside every host's).
  }
  const [low, high] = ephemeral;
  if (low !== undefined && high !== undefined && range.low <= high && range.high >= low) {
    throw new UsageError(
      `--two-way-ports ${text} overlaps this host's ephemeral ports (${low}-${high}, ` +
        'net.ipv4.ip_local_port_range): choose a range outside it on every host',
    );
  }
  return range;
}

function parseExclusion(text: string): AddressRange {
  try {
    return parseAddressRange(text);
  } catch (err) {
    throw new UsageError(`--exclude-client: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The line that says capture runs: where, with which kernel filter, into which pools, values up to what. */
function startedLine(job: MirrorJob): string {
  const info = job.captureInfo();
  const s = job.summary();
  const ring = info.sizing;
  const delivery =
    ring === undefined
      ? ''
      : `, immediate delivery, snap ${ring.snapLength} B (MTU ${ring.mtu ?? '?'}), ` +
        `ring ${formatBytes(ring.bufferKiB * 1024)} (~${ring.ringPackets} packets, ` +
        `~${ring.ringMs} ms at ${ring.packetsPerSecond} packets/s)`;
  const program =
    info.program === 'helper'
      ? `; memshift-capture, ring blocks handed over within ${info.timeoutMs} ms`
      : info.program === 'tcpdump'
        ? '; tcpdump'
        : '';
  const where = `capturing on ${info.interface} (filter: ${info.filter ?? '?'}${program}${delivery})`;
  const routes = s.routes.map((r) => `${r.sourcePort} -> ${r.target}`).join(', ');
  const limit = s.limits === undefined ? '' : `; values up to ${formatBytes(s.limits.maxValueBytes)}`;
  return `memshift mirror: ${where}; ${routes}${limit}`;
}

function formatBytes(n: number): string {
  if (n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/** A one-line live status on a terminal (rewritten in place), a plain line every 10 s otherwise. */
class StatusLine {
  private timer: NodeJS.Timeout | undefined;
  private last: { time: number; requests: number; applied: number } | undefined;
  private ticks = 0;
  constructor(
    private readonly job: MirrorJob,
    private readonly log: EventLog,
  ) {}

  start(): void {
    const tty = process.stderr.isTTY === true;
    this.timer = setInterval(() => {
      this.ticks++;
      if (!tty && this.ticks % 10 !== 0) return;
      const line = this.line();
      this.log.event({ event: 'status', ...this.job.summary() });
      process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
    }, 1000);
    this.timer.unref();
  }

  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  }

  private line(): string {
    const s = this.job.summary();
    const requests = s.operations.requests;
    const applied = s.routes.reduce((n, r) => n + r.replay.applied, 0);
    const now = Date.now();
    const prev = this.last ?? { time: now - 1000 * s.seconds, requests: 0, applied: 0 };
    const dt = Math.max(0.001, (now - prev.time) / 1000);
    this.last = { time: now, requests, applied };
    const dropped = s.routes.reduce((n, r) => n + r.replay.dropped, 0);
    const lag = Math.max(0, ...s.routes.map((r) => r.replay.lag.p99));
    return (
      `mirror ${Math.round(s.seconds)}s | requests ${rate((requests - prev.requests) / dt)}/s` +
      ` | applied ${rate((applied - prev.applied) / dt)}/s | dropped ${dropped}` +
      ` | lag p99 ${lag.toFixed(1)} ms | flows ${s.capture.flows.flowsOpened - s.capture.flows.flowsClosed}` +
      ` | ${lossLine(s)}` +
      (s.backfill ? ` | backfill ${backfillLine(s)}` : '')
    );
  }
}

function lostTraffic(s: MirrorSummary): boolean {
  return s.loss.kernelDrops > 0 || s.loss.streamGaps > 0 || s.loss.stoppedBehindMs > 0;
}

/** Capture loss so far, and what the last interval added. */
function lossLine(s: MirrorSummary): string {
  const l = s.loss;
  const last = l.lastInterval;
  const now =
    last.kernelDrops || last.streamGaps ? ` (LOSING: +${last.kernelDrops}/+${last.streamGaps})` : '';
  return `kernel drops ${l.kernelDrops} | stream gaps ${l.streamGaps}${now}`;
}

function backfillLine(s: MirrorSummary): string {
  let done = 0;
  let total = 0;
  for (const b of s.backfill ?? []) {
    done += b.report?.done ?? b.progress?.done ?? 0;
    total += b.report?.total ?? b.progress?.total ?? 0;
  }
  const finished = (s.backfill ?? []).every((b) => b.report !== undefined || b.error !== undefined);
  return finished ? `done (${done} keys)` : `${done}/${total} keys`;
}

function rate(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : String(Math.round(n));
}

/**
 * The mirror's figures for the dashboard and /metrics: `group/series` names
 * put series on one chart; counters are charted per second.
 */
export function mirrorSnapshot(s: MirrorSummary): DashboardSnapshot {
  const counters: Record<string, number> = {
    'capture/packets': s.capture.flows.packets,
    'capture/requests': s.operations.requests,
  };
  counters['capture loss/kernel drops'] = s.loss.kernelDrops;
  counters['capture loss/stream gaps'] = s.loss.streamGaps;
  const gauges: Record<string, number> = {
    'kernel drops/packets': s.loss.kernelDrops,
    'connections/open': s.capture.flows.flowsOpened - s.capture.flows.flowsClosed,
  };
  const progress: Record<string, { done: number; total: number }> = {};
  for (const r of s.routes) {
    const add = (name: string, value: number): void => {
      counters[name] = (counters[name] ?? 0) + value;
    };
    add(`operations/seen`, r.replay.seen);
    add(`operations/applied`, r.replay.applied);
    add(`operations/dropped`, r.replay.dropped);
    add(`operations/failed`, r.replay.failed);
    add(`operations/invalidated`, r.replay.invalidated);
    add(`fills/applied`, r.replay.fills.applied);
    add(`two-way/peer writes`, r.replay.peer.writes);
    add(`two-way/conflicts`, r.replay.peer.conflicts);
    for (const [reason, n] of Object.entries(r.replay.skipped)) add(`skipped/${reason}`, n);
    gauges['lag seconds/p50'] = Math.max(gauges['lag seconds/p50'] ?? 0, r.replay.lag.p50 / 1000);
    gauges['lag seconds/p99'] = Math.max(gauges['lag seconds/p99'] ?? 0, r.replay.lag.p99 / 1000);
    gauges['remembered keys'] = (gauges['remembered keys'] ?? 0) + r.replay.remembered;
    for (const server of r.replay.servers) gauges[`queued/${server.address}`] = server.queued;
  }
  for (const b of s.backfill ?? []) {
    const state = b.report ?? b.progress;
    if (state) progress[`backfill :${b.sourcePort}`] = { done: state.done, total: state.total };
  }
  return { time: Date.now(), counters, gauges, progress };
}

export function renderSummary(s: MirrorSummary): string {
  const lines = [
    `mirrored for ${s.seconds.toFixed(1)} s from ${s.source === 'live' ? 'live capture' : 'a pcap file'}:` +
      ` ${s.capture.flows.packets} packets, ${s.capture.flows.flowsOpened} connections` +
      (s.kernel ? `, ${s.kernel.droppedByKernel ?? 0} dropped by the kernel` : '') +
      `, ${s.operations.requests} requests`,
  ];
  const header = [
    'ROUTE',
    'TARGET',
    'SEEN',
    'APPLIED',
    'SKIPPED',
    'DROPPED',
    'INVALIDATED',
    'FAILED',
    'FILLS',
  ];
  const rows = s.routes.map((r) => [
    `:${r.sourcePort}`,
    r.target,
    String(r.replay.seen),
    String(r.replay.applied),
    String(Object.values(r.replay.skipped).reduce((a, b) => a + b, 0)),
    String(r.replay.dropped),
    String(r.replay.invalidated),
    String(r.replay.failed),
    String(r.replay.fills.applied),
  ]);
  lines.push('', formatTable(header, rows, [false, false, true, true, true, true, true, true, true]));
  for (const r of s.routes) {
    const reasons = Object.entries(r.replay.skipped).filter(([, n]) => n > 0);
    if (reasons.length)
      lines.push(`:${r.sourcePort} skipped: ${reasons.map(([k, n]) => `${k} ${n}`).join(', ')}`);
    if (r.replay.unrecoverable > 0) {
      lines.push(
        `:${r.sourcePort} WARNING: ${r.replay.unrecoverable} dropped keys could not be remembered for invalidation`,
      );
    }
  }
  for (const r of s.routes) {
    const p = r.replay.peer;
    if (s.peerFlows > 0 || p.seen > 0) {
      lines.push(
        `:${r.sourcePort} two-way: ${p.seen} peer operations observed (not mirrored back), ` +
          `${p.writes} peer writes, ${p.conflicts} keys written on both sides deleted`,
      );
    }
  }
  if (!s.drained)
    lines.push('WARNING: the replay queues did not drain in time; writes still queued were dropped');
  const loss = s.loss;
  if (lostTraffic(s)) {
    lines.push(
      `WARNING: capture lost traffic: ${loss.kernelDrops} packets dropped by the kernel, ` +
        `${loss.streamGaps} stream gaps (${loss.streamGapBytes} bytes, ${loss.requestGapBytes} of them requests)` +
        (loss.stoppedBehindMs > 0 ? `, the last ${loss.stoppedBehindMs} ms unread at stop. ` : '. ') +
        `Writes in them were never seen, so keys they changed may be stale on the new pool ` +
        `(about ${loss.estimatedLostRequests} requests lost; which keys cannot be known). ` +
        'Run `memshift repair` before the switch.',
    );
  }
  return lines.join('\n');
}
