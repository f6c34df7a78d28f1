/**
 * `memshift top [POOL or HOST:PORT ...]`: many instances at a glance, every
 * interval, grouped by pool. Full screen in a terminal; plain snapshots
 * (table or JSON lines) without one, or with --once / --json. --web serves
 * the same figures as a live dashboard with Prometheus /metrics.
 *
 * `memshift top --keys`: the hottest keys of the servers on this host, from
 * captured traffic (tcpdump), by requests or bytes over a sliding window.
 */
import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAddressRange, type AddressRange } from '../../capture/filter.js';
import { startHotKeys, type HotKeyOrder } from '../../jobs/hot-keys.js';
import { TopPoller, type TopGroup, type TopSnapshot } from '../../jobs/top.js';
import { loadPools, resolvePool, type Pool } from '../../topology/pool.js';
import { startDashboard, type Dashboard, type DashboardSnapshot } from '../dashboard/server.js';
import { createMetricsRegistry, registerTopMetrics } from '../metrics.js';
import { UsageError, captureProgramFrom, parseMilliseconds, type Output } from '../options.js';
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
  keys?: boolean;
  port: string[];
  interface: string;
  window: string;
  limit?: string;
  capacity: string;
  excludeClient: string[];
  captureProgram?: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

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
    .option('--keys', 'hot keys instead: captured traffic of this host, top keys by requests or bytes')
    .option('--port <port>', 'with --keys: server port to capture (repeatable; default 11211)', collect, [])
    .option('-i, --interface <name>', 'with --keys: interface to capture on', 'any')
    .option('--window <seconds>', 'with --keys: sliding window the figures cover', '60')
    .option('--limit <n>', 'with --keys: rows shown (default: what fits the screen, 30 in plain output)')
    .option('--capacity <n>', 'with --keys: most keys tracked at once (fixed memory)', '10000')
    .option(
      '--exclude-client <addr[/bits]>',
      "with --keys: leave this client's traffic out (repeatable)",
      collect,
      [],
    )
    .option(
      '--capture-program <program>',
      'with --keys: helper (memshift-capture, the default when built) or tcpdump',
    )
    .addHelpText(
      'after',
      '\nThe first pool is taken as the old one and the last as the new one: the fill bar\n' +
        "shows the new pool's items and bytes against the old pool's.\n" +
        'Keys in the full-screen view: < > sort column, r reverse, p pause, h help, q quit.\n' +
        'Exit status with --once: 0 when every instance answered, 1 when any is down.\n' +
        'Example: memshift top --pools pools.yaml old new --web 127.0.0.1:9911\n' +
        '\nWith --keys (needs tcpdump and capture rights), --sort is requests or bytes; counts\n' +
        'marked ~ are upper bounds (more keys than --capacity were seen). --once prints after\n' +
        'one interval, or at Ctrl-C.\n' +
        'Example: memshift top --keys -i eth0 --port 11211 --window 60',
    )
    .action(async (targets: string[], flags: TopFlags) => {
      out.exitCode = flags.keys ? await runKeys(targets, flags, out) : await runTop(targets, flags, out);
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
            table: view.INSTANCE_TABLE,
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

function parseWholeNumber(option: string, text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`${option} must be a whole number above 0, got "${text}"`);
  return n;
}

function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535)
    throw new UsageError(`--port must be a number from 1 to 65535, got "${text}"`);
  return n;
}

function parseKeysSort(text: string): SortState {
  const name = text.toLowerCase();
  // `instance` is the instance view's default: the hot keys then rank by requests.
  if (['requests', 'req/s', 'instance'].includes(name)) return { column: 0, descending: true };
  if (['bytes', 'bytes/s'].includes(name)) return { column: 1, descending: true };
  throw new UsageError(`--sort with --keys must be requests or bytes; got "${text}"`);
}

function parseExclusion(text: string): AddressRange {
  try {
    return parseAddressRange(text);
  } catch (err) {
    throw new UsageError(`--exclude-client: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** `top --keys`: capture, count, and show the hottest keys every interval. */
async function runKeys(targets: string[], flags: TopFlags, out: Output): Promise<number> {
  if (targets.length > 0 || flags.pools !== undefined)
    throw new UsageError("top --keys captures this host's traffic: give --port, not pools or instances");
  if (flags.web !== undefined) throw new UsageError('--web is not available with --keys');
  const intervalMs = parseMilliseconds('--interval', flags.interval);
  const count = parseCount(flags.count);
  const sort = parseKeysSort(flags.sort);
  const windowSeconds = Number(flags.window);
  if (!(windowSeconds > 0) || windowSeconds > 86_400)
    throw new UsageError(
      `--window must be a number of seconds above 0 (at most a day), got "${flags.window}"`,
    );
  const limit = flags.limit === undefined ? undefined : parseWholeNumber('--limit', flags.limit);
  const capacity = parseWholeNumber('--capacity', flags.capacity);
  const ports = flags.port.length > 0 ? flags.port.map(parsePort) : [11211];
  const hot = await startHotKeys({
    interface: flags.interface,
    ports,
    excludeClients: flags.excludeClient.map(parseExclusion),
    windowSeconds,
    capacity,
    captureProgram: captureProgramFrom(flags.captureProgram),
  });
  const view = await import('../top-view.js');
  const order = (s: SortState): HotKeyOrder =>
    s.column === view.KEYS_BY_BYTES_COLUMN ? 'bytes' : 'requests';
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // Announced only once a signal can stop it cleanly: scripts wait for this line.
  process.stderr.write(`memshift top: counting keys on ${flags.interface} port ${ports.join(',')}\n`);
  const wait = async (ms: number): Promise<void> => {
    try {
      await sleep(ms, undefined, { signal: stop.signal });
    } catch {
      // Interrupted: the caller looks at the signal.
    }
  };
  const print = (s: ReturnType<typeof hot.snapshot>): void =>
    out.write(flags.json ? JSON.stringify(s) : view.renderKeysText(s, sort));
  try {
    if (flags.once) {
      await wait(intervalMs);
      // The last kernel batch arrives after the interval: let it in before counting.
      await hot.stop();
      if (hot.error) throw hot.error;
      print(hot.snapshot(limit ?? 30, order(sort)));
      return 0;
    }
    const screen =
      flags.json || !process.stdout.isTTY || !process.stdin.isTTY
        ? undefined
        : new view.TopScreen({ table: view.KEYS_TABLE, intervalMs, sort, onQuit: () => stop.abort() });
    try {
      screen?.start();
      for (let n = 0; count === undefined || n < count; n++) {
        await wait(intervalMs);
        if (stop.signal.aborted || hot.error) break;
        if (screen) {
          const rows = limit ?? Math.max(1, process.stdout.rows - 3);
          screen.update(hot.snapshot(rows, order(screen.sortState)));
        } else {
          const snapshot = hot.snapshot(limit ?? 30, order(sort));
          out.write(flags.json ? JSON.stringify(snapshot) : `${view.renderKeysText(snapshot, sort)}\n`);
        }
      }
    } finally {
      screen?.stop();
    }
    await hot.stop();
    if (hot.error) throw hot.error;
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await hot.stop();
  }
}
