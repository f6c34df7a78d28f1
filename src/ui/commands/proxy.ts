/**
 * `memshift proxy`: the command line of the proxy job (src/jobs/proxy.ts):
 * the listening address, the mode, a live status line on a terminal, a
 * summary at exit (text or --json), structured logs, and a graceful stop on
 * SIGINT/SIGTERM or after --duration.
 */
import type { Command } from 'commander';
import { isIP } from 'node:net';
import { Proxy, type ProxyMode, type ProxyStatus } from '../../jobs/proxy.js';
import { EventLog } from '../event-log.js';
import { formatTable } from '../format.js';
import { UsageError, type Output } from '../options.js';
import { poolOptions, resolvePools, type PoolFlags } from '../pools.js';
import type { DashboardSnapshot } from '../dashboard/server.js';
import { addWebOptions, serveWeb, type WebFlags } from '../web.js';

interface ProxyFlags extends PoolFlags, WebFlags {
  mode: string;
  listen: string;
  maxConnections: string;
  idleTimeout: string;
  partialTimeout: string;
  timeout: string;
  secondaryTimeout: string;
  maxInFlight: string;
  maxClientBuffer: string;
  itemSizeMax?: string;
  maxQueue: string;
  maxRemembered: string;
  fill: boolean;
  duration?: string;
  grace: string;
  drain: string;
  backfill?: boolean;
  backfillRate?: string;
  json?: boolean;
  log?: string;
  flush: string;
}

const MODES: readonly ProxyMode[] = ['shadow', 'warm', 'dual'];

export function registerProxy(program: Command, out: Output): void {
  poolOptions(addWebOptions(program.command('proxy')))
    .description(
      'inline proxy: the old pool answers and the new one is shadowed, warmed on miss or dual-written',
    )
    .option(
      '--mode <mode>',
      'shadow (old answers), warm (new answers, misses read from old) or dual',
      'shadow',
    )
    .option(
      '--listen <host:port>',
      'address clients connect to (loopback unless told otherwise)',
      '127.0.0.1:11311',
    )
    .option('--max-connections <n>', 'client connections open at most', '4096')
    .option('--idle-timeout <seconds>', 'close client connections idle this long (0: never)', '0')
    .option(
      '--partial-timeout <seconds>',
      'close a client connection whose request stays incomplete this long (0: never)',
      '30',
    )
    .option('--timeout <ms>', 'a primary request unanswered this long gets SERVER_ERROR', '2000')
    .option('--secondary-timeout <ms>', 'dual writes, warm lookups and deletes wait this long at most', '250')
    .option('--max-in-flight <n>', 'requests in flight per client connection before reading pauses', '1024')
    .option(
      '--max-client-buffer <bytes>',
      'reply bytes per client connection, buffered or expected, before its further requests wait',
      String(4 * 1024 * 1024),
    )
    .option(
      '--max-queue <n>',
      'shadow: writes queued per new server before dropping (key remembered)',
      '100000',
    )
    .option('--max-remembered <n>', 'keys remembered for invalidation on the secondary', '1000000')
    .option('--no-fill', 'shadow: do not fill the new pool with values read from the old one')
    .option('--duration <seconds>', 'stop by itself after this long')
    .option('--grace <seconds>', 'on stop, let in-flight requests finish for at most this long', '5')
    .option('--drain <seconds>', 'on stop, let shadow writes finish for at most this long', '5')
    .option('--backfill', 'shadow: also copy what the old pool already holds, guarded by the shadow')
    .option('--backfill-rate <n>', 'with --backfill: at most n keys per second')
    .option('--json', 'print the summary at exit as JSON')
    .option(
      '--item-size-max <bytes>',
      "the largest item a primary server stores (default: each server's own item_size_max)",
    )
    .option('--log <file>', 'write structured logs (JSON lines) to this file')
    .option(
      '--flush <policy>',
      'shadow: a client flush_all reaches the new pool with all-targets; skip (the default, as mirror) leaves it',
      'skip',
    )
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  memshift proxy --from 10.0.0.1:11211,10.0.0.2:11211 --to 10.0.1.1:11211 --mode shadow\n' +
        '  memshift proxy --pools pools.yaml --from old --to new --mode warm --listen 127.0.0.1:11211',
    )
    .action(async (flags: ProxyFlags) => {
      const mode = flags.mode as ProxyMode;
      if (!MODES.includes(mode))
        throw new UsageError(`--mode must be shadow, warm or dual, got "${flags.mode}"`);
      const { from, to } = resolvePools(flags);
      const listen = hostPort(flags.listen);
      const log = new EventLog(flags.log);
      const logEvent = (event: Record<string, unknown>): void => log.event(event);
      if (!isLoopback(listen.host)) {
        log.warn(
          `listening on ${listen.host}, beyond this machine: memcached's protocol has no authentication, ` +
            'so anyone who can reach this port can read and change the cache',
        );
      }
      const proxy = new Proxy({
        mode,
        primary: mode === 'warm' ? to : from,
        secondary: mode === 'warm' ? from : to,
        listen: {
          host: listen.host,
          port: listen.port,
          maxConnections: whole('--max-connections', flags.maxConnections, 1),
          idleTimeoutMs: whole('--idle-timeout', flags.idleTimeout, 0) * 1000,
        },
        partialTimeoutMs: number('--partial-timeout', flags.partialTimeout) * 1000,
        timeoutMs: whole('--timeout', flags.timeout, 1),
        secondaryTimeoutMs: whole('--secondary-timeout', flags.secondaryTimeout, 1),
        maxInFlight: whole('--max-in-flight', flags.maxInFlight, 2),
        maxClientBytes: whole('--max-client-buffer', flags.maxClientBuffer, 1024),
        ...(flags.itemSizeMax === undefined
          ? {}
          : { itemSizeMax: whole('--item-size-max', flags.itemSizeMax, 1024) }),
        maxRememberedKeys: whole('--max-remembered', flags.maxRemembered, 0),
        replay: {
          fill: flags.fill,
          maxQueuedPerServer: whole('--max-queue', flags.maxQueue, 1),
          maxRememberedKeys: whole('--max-remembered', flags.maxRemembered, 0),
          flush: flushPolicy(flags.flush),
        },
        backfill: flags.backfill
          ? flags.backfillRate === undefined
            ? {}
            : { rate: whole('--backfill-rate', flags.backfillRate, 1) }
          : undefined,
        onWarning: (message) => log.warn(message),
      });
      const bound = await proxy.start();
      logEvent({
        event: 'start',
        mode,
        listen: `${bound.host}:${bound.port}`,
        primary: from.name,
        secondary: to.name,
      });
      let stop: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => (stop = resolve));
      const onSignal = (signal: string): void => {
        logEvent({ event: 'signal', signal });
        stop();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      // Announced once a signal stops it cleanly: scripts wait for these lines.
      const dashboard = await serveWeb(flags, 'proxy', () => proxySnapshot(proxy.status()));
      process.stderr.write(`memshift proxy (${mode}) listening on ${proxy.address}\n`);
      const timer =
        flags.duration === undefined
          ? undefined
          : setTimeout(stop, number('--duration', flags.duration) * 1000);
      const live = process.stderr.isTTY
        ? setInterval(() => process.stderr.write('\r\x1b[K' + statusLine(proxy.status())), 1000)
        : undefined;
      try {
        await stopped;
      } finally {
        await dashboard?.close();
        clearTimeout(timer);
        clearInterval(live);
        if (live) process.stderr.write('\r\x1b[K');
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
      }
      const summary = await proxy.stop(
        number('--grace', flags.grace) * 1000,
        number('--drain', flags.drain) * 1000,
      );
      logEvent({ event: 'summary', ...summary });
      await log.close();
      out.write(flags.json ? JSON.stringify(summary, null, 2) + '\n' : renderSummary(summary));
      if (summary.proxy.primaryErrors > 0) out.exitCode = 1;
    });
}

/** The proxy's figures for the dashboard and /metrics. */
export function proxySnapshot(s: ProxyStatus): DashboardSnapshot {
  const counters: Record<string, number> = {
    'requests/clients': s.proxy.requests,
    'errors/primary': s.proxy.primaryErrors,
    'errors/protocol': s.proxy.protocolErrors,
    'secondary/sent': s.proxy.secondarySent,
    'secondary/failed': s.proxy.secondaryFailed,
    'warm/lookups': s.proxy.warmLookups,
    'warm/hits': s.proxy.warmHits,
  };
  if (s.replay) {
    counters['shadow/seen'] = s.replay.seen;
    counters['shadow/applied'] = s.replay.applied;
    counters['shadow/dropped'] = s.replay.dropped;
  }
  return {
    time: Date.now(),
    counters,
    gauges: {
      'connections/open': s.connections.open,
      'remembered keys': s.remembered,
      ...(s.replay
        ? { 'lag seconds/p99': s.replay.lag.p99 / 1000, 'shadow queued/all': s.replay.queued }
        : {}),
    },
  };
}

/** One line: connections, requests, primary errors, and the secondary's share of the work. */
export function statusLine(s: ProxyStatus): string {
  let line = `${s.mode} ${s.connections.open} conns, ${s.proxy.requests} requests, ${s.proxy.primaryErrors} primary errors`;
  if (s.replay) {
    line += `, shadow applied ${s.replay.applied}/${s.replay.seen}, queued ${s.replay.queued}, dropped ${s.replay.dropped}`;
  }
  if (s.mode === 'warm') line += `, warm hits ${s.proxy.warmHits}/${s.proxy.warmLookups}`;
  if (s.mode !== 'shadow')
    line += `, secondary failed ${s.proxy.secondaryFailed}, remembered ${s.remembered}`;
  return line;
}

function renderSummary(s: ProxyStatus): string {
  const rows: string[][] = [
    ['mode', s.mode],
    ['seconds', s.seconds.toFixed(1)],
    ['connections accepted', String(s.connections.accepted)],
    ['connections rejected', String(s.connections.rejected)],
    ['requests', String(s.proxy.requests)],
    ['primary errors', String(s.proxy.primaryErrors)],
    ['protocol errors', String(s.proxy.protocolErrors)],
  ];
  if (s.replay) {
    rows.push(
      ['shadow seen', String(s.replay.seen)],
      ['shadow applied', String(s.replay.applied)],
      ['shadow dropped', String(s.replay.dropped)],
      ['shadow failed', String(s.replay.failed)],
      ['fills applied', String(s.replay.fills.applied)],
    );
  } else {
    rows.push(
      ['secondary writes', String(s.proxy.secondarySent)],
      ['secondary failed', String(s.proxy.secondaryFailed)],
      ['secondary skipped', String(s.proxy.secondarySkipped)],
      ['keys invalidated', String(s.invalidated)],
      ['keys still remembered', String(s.remembered)],
    );
  }
  if (s.mode === 'warm')
    rows.push(['warm lookups', String(s.proxy.warmLookups)], ['warm hits', String(s.proxy.warmHits)]);
  return formatTable(['', 'value'], rows) + '\n';
}

function flushPolicy(text: string): 'skip' | 'all-targets' {
  if (text === 'skip' || text === 'all-targets') return text;
  throw new UsageError(`--flush must be skip or all-targets, got "${text}"`);
}

/** Whether clients can reach `host` only from this machine. */
function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

function hostPort(text: string): { host: string; port: number } {
  const colon = text.lastIndexOf(':');
  if (colon < 1) throw new UsageError(`--listen must be host:port, got "${text}"`);
  const host = text.slice(0, colon).replace(/^\[|\]$/g, '');
  return { host, port: whole('--listen port', text.slice(colon + 1), 0) };
}

function whole(option: string, text: string, min: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    throw new UsageError(`${option} must be a whole number of at least ${min}, got "${text}"`);
  }
  return value;
}

function number(option: string, text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0)
    throw new UsageError(`${option} must be a number of at least 0, got "${text}"`);
  return value;
}
