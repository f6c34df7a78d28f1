/**
 * `memshift top [POOL or HOST:PORT ...]`: many instances at a glance, every
 * interval, grouped by pool. Full screen in a terminal; plain snapshots
 * (table or JSON lines) without one, or with --once / --json. --web serves
 * the same figures as a live dashboard with Prometheus /metrics.
 */
import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { TopPoller, type TopGroup, type TopSnapshot } from '../../jobs/top.js';
import { loadPools, resolvePool, type Pool } from '../../topology/pool.js';
import { startDashboard, type Dashboard, type DashboardSnapshot } from '../dashboard/server.js';
import { createMetricsRegistry, registerTopMetrics } from '../metrics.js';
import { UsageError, parseMilliseconds, type Output } from '../options.js';
import type { SortState } from '../top-view.js';

interface TopFlags {
  pools?: string;
  interval: string;
  timeout: string;
  once?: boolean;
  json?: boolean;
  count?: string;
  sort: string;
  web?: string;
  webAllowRemote?: boolean;
}

const SORTABLE = [
  'instance',
  'state',
  'version',
  'uptime',
  'used',
  'mem%',
  'items',
  'hit',
  'get/s',
  'set/s',
  'evict/s',
  'conns',
  'read/s',
  'write/s',
  'rtt',
];

export function registerTop(program: Command, out: Output): void {
  program
    .command('top')
    .description('live view of many memcached instances, grouped by pool, with rates, hit ratio and fill')
    .argument('[targets...]', 'pools named in --pools, or host:port[,host:port...] (one pool per argument)')
    .option('--pools <file>', 'YAML or JSON file of named pools (every pool in it when no target is given)')
    .option('--interval <ms>', 'time between polls', '2000')
    .option('--timeout <ms>', 'an instance slower than this to answer stats is shown DOWN', '1000')
    .option('--once', 'print one snapshot (two polls, one interval apart) and exit')
    .option('--json', 'print JSON (one object per line) instead of the table')
    .option('--count <n>', 'stop after n refreshes')
    .option('--sort <column>', `initial sort column: ${SORTABLE.join(', ')}`, 'instance')
    .option('--web <host:port>', 'serve a live dashboard and /metrics on this loopback address')
    .option(
      '--web-allow-remote',
      'let --web listen on a non-loopback address (no authentication: firewall it)',
    )
    .addHelpText(
      'after',
      '\nThe first pool is taken as the old one and the last as the new one: the fill bar\n' +
        "shows the new pool's items and bytes against the old pool's.\n" +
        'Keys in the full-screen view: < > sort column, r reverse, p pause, h help, q quit.\n' +
        'Exit status with --once: 0 when every instance answered, 1 when any is down.\n' +
        'Example: memshift top --pools pools.yaml old new --web 127.0.0.1:9911',
    )
    .action(async (targets: string[], flags: TopFlags) => {
      out.exitCode = await runTop(targets, flags, out);
    });
}

function parseCount(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`--count must be a whole number above 0, got "${text}"`);
  return n;
}

function parseSort(text: string): SortState {
  const column = SORTABLE.indexOf(text.toLowerCase());
  if (column < 0) throw new UsageError(`--sort must be one of ${SORTABLE.join(', ')}; got "${text}"`);
  // The first three columns are names (sorted up); figures sort down, biggest first.
  return { column, descending: column >= 3 };
}

export function topGroups(targets: string[], poolsFile: string | undefined): TopGroup[] {
  const pools = poolsFile ? loadPools(poolsFile) : undefined;
  let chosen: Pool[];
  if (targets.length === 0) {
    if (!pools)
      throw new UsageError('top needs pools or instances: memshift top HOST:PORT ... or --pools FILE');
    chosen = [...pools.values()];
  } else {
    chosen = targets.map((t) => resolvePool(t, { pools, poolsFile, option: 'top' }));
  }
  return chosen.map((p) => ({ name: p.name, addresses: p.servers.map((s) => s.address) }));
}

/** The dashboard's view of a top snapshot: per-pool rates, per-instance gauges, fill. */
export function topDashboardSnapshot(snapshot: TopSnapshot | undefined): DashboardSnapshot {
  const counters: Record<string, number> = {};
  const gauges: Record<string, number> = {};
  if (!snapshot) return { time: Date.now(), counters, gauges };
  for (const pool of snapshot.pools) {
    let gets = 0;
    let sets = 0;
    let evictions = 0;
    let read = 0;
    let written = 0;
    for (const row of pool.instances) {
      if (!row.up) continue;
      gets += row.counters.cmdGet;
      sets += row.counters.cmdSet;
      evictions += row.counters.evictions;
      read += row.counters.bytesRead;
      written += row.counters.bytesWritten;
      gauges[`items/${row.address}`] = row.items;
      gauges[`memory used bytes/${row.address}`] = row.bytes;
      gauges[`stats rtt ms/${row.address}`] = Math.round(row.rttMs * 1000) / 1000;
    }
    counters[`gets/${pool.name}`] = gets;
    counters[`sets/${pool.name}`] = sets;
    counters[`evictions/${pool.name}`] = evictions;
    counters[`read bytes/${pool.name}`] = read;
    counters[`written bytes/${pool.name}`] = written;
    gauges[`instances up/${pool.name}`] = pool.up;
    if (pool.hitRatio !== undefined) gauges[`hit ratio/${pool.name}`] = pool.hitRatio;
  }
  if (snapshot.fill?.items !== undefined) gauges['fill/items'] = snapshot.fill.items;
  if (snapshot.fill?.bytes !== undefined) gauges['fill/bytes'] = snapshot.fill.bytes;
  return { time: snapshot.time, counters, gauges };
}

/** One line of JSON per snapshot, without the raw STAT lines (`memshift stats` has those). */
function toJson(snapshot: TopSnapshot): string {
  return JSON.stringify(snapshot, (key, value: unknown) => (key === 'raw' ? undefined : value));
}

async function runTop(targets: string[], flags: TopFlags, out: Output): Promise<number> {
  const intervalMs = parseMilliseconds('--interval', flags.interval);
  const timeoutMs = parseMilliseconds('--timeout', flags.timeout);
  const count = parseCount(flags.count);
  const sort = parseSort(flags.sort);
  const poller = new TopPoller(topGroups(targets, flags.pools), { timeoutMs });
  let dashboard: Dashboard | undefined;
  try {
    if (flags.web !== undefined) {
      const metrics = createMetricsRegistry();
      registerTopMetrics(metrics, () => poller.snapshot);
      dashboard = await startDashboard({
        listen: flags.web,
        title: 'memshift top',
        snapshot: () => topDashboardSnapshot(poller.snapshot),
        metrics,
        allowRemote: flags.webAllowRemote === true,
      });
      process.stderr.write(
        `memshift top: dashboard on ${dashboard.url} (metrics on ${dashboard.url}metrics)\n`,
      );
    }
    // terminal-kit loads only for top, not for every command.
    const view = await import('../top-view.js');
    if (flags.once) {
      await poller.poll();
      await sleep(intervalMs);
      const snapshot = await poller.poll();
      out.write(flags.json ? toJson(snapshot) : view.renderTopText(snapshot, sort));
      return snapshot.pools.every((p) => p.down === 0) ? 0 : 1;
    }
    const stop = new AbortController();
    const onSignal = (): void => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const screen =
      flags.json || !process.stdout.isTTY || !process.stdin.isTTY
        ? undefined
        : new view.TopScreen({
            intervalMs,
            sort,
            onQuit: () => stop.abort(),
            ...(dashboard ? { note: dashboard.url } : {}),
          });
    try {
      screen?.start();
      for (let n = 0; count === undefined || n < count; n++) {
        const started = Date.now();
        const snapshot = await poller.poll();
        if (stop.signal.aborted) break;
        if (screen) screen.update(snapshot);
        else out.write(flags.json ? toJson(snapshot) : `${view.renderTopText(snapshot, sort)}\n`);
        if (count !== undefined && n + 1 >= count) break;
        try {
          await sleep(Math.max(0, intervalMs - (Date.now() - started)), undefined, { signal: stop.signal });
        } catch {
          break;
        }
      }
    } finally {
      screen?.stop();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return 0;
  } finally {
    poller.close();
    await dashboard?.close();
  }
}
