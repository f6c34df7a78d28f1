/**
 * The live dashboard any long-running command can serve: a small HTTP server,
 * on loopback unless the user says otherwise, with
 *   /               the page (static HTML + script, uPlot from its package),
 *   /events         snapshots pushed by server-sent events, at most once a second,
 *   /snapshot.json  the latest snapshot, for scripts and tests,
 *   /metrics        the command's Prometheus registry, when it has one.
 * The command hands over a snapshot function; the server samples it once a
 * second into a bounded history, so a page opened late still draws the last
 * minutes.
 */
import { createRequire } from 'node:module';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { readFile } from 'node:fs/promises';
import type { Registry } from 'prom-client';
import { MemshiftError } from '../../protocol/errors.js';
import { PAGE_HTML, PAGE_SCRIPT, PAGE_STYLE } from './page.js';

export interface DashboardProgress {
  readonly done: number;
  /** Unknown while a total is still being counted. */
  readonly total: number | undefined;
}

/**
 * What a command shows. Names may read `chart/series`: series of one chart
 * share a name before the slash; a name without one gets a chart of its own.
 */
export interface DashboardSnapshot {
  /** ms since the epoch. */
  readonly time: number;
  /** Running totals (mirrored, applied, dropped...): charted as rates per second. */
  readonly counters: Readonly<Record<string, number>>;
  /** Values charted as they are (lag, coverage, fill per server...). */
  readonly gauges: Readonly<Record<string, number>>;
  /** Progress bars by label (copy: keys copied of keys listed). */
  readonly progress?: Readonly<Record<string, DashboardProgress>>;
}

export interface DashboardOptions {
  /** host:port to listen on; port 0 picks a free one. */
  readonly listen: string;
  readonly title: string;
  readonly snapshot: () => DashboardSnapshot;
  readonly metrics?: Registry;
  /** Listen on an address other than loopback (the page and /metrics have no authentication). */
  readonly allowRemote?: boolean;
}

export interface Dashboard {
  /** http://host:port/ */
  readonly url: string;
  /** Pushes skipped because a page was not reading fast enough, and pages refused over the cap. */
  readonly counters: { readonly skippedPushes: number; readonly refusedClients: number };
  close(): Promise<void>;
}

const PUSH_INTERVAL_MS = 1000;
/** Ten minutes at one snapshot a second. */
const HISTORY_LIMIT = 600;
const MAX_CLIENTS = 32;

/** Splits `host:port` / `[v6]:port`; the port is required. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new MemshiftError(
      'MEMSHIFT_ERR_USAGE',
      `--web must be host:port, e.g. 127.0.0.1:8080 or [::1]:8080; got "${text}"`,
    );
  }
  return { host: (m[1] ?? m[2]) as string, port };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const family = isIP(host);
  if (family === 4) return host.startsWith('127.');
  if (family === 6)
    return host === '::1' || /^(0{0,4}:){7}0{0,3}1$/.test(host) || host === '::ffff:127.0.0.1';
  return false;
}

const require = createRequire(import.meta.url);
const UPLOT_DIR = dirname(require.resolve('uplot'));

export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const { host, port } = parseListen(options.listen);
  if (!options.allowRemote && !isLoopback(host)) {
    throw new MemshiftError(
      'MEMSHIFT_ERR_USAGE',
      `--web ${options.listen} is not a loopback address; the dashboard has no authentication, ` +
        'so it listens on 127.0.0.1 or ::1 unless remote access is allowed explicitly',
    );
  }
  const [uplotJs, uplotCss] = await Promise.all([
    readFile(join(UPLOT_DIR, 'uPlot.iife.min.js')),
    readFile(join(UPLOT_DIR, 'uPlot.min.css')),
  ]);
  const html = PAGE_HTML.replaceAll('%TITLE%', escapeHtml(options.title));

  // History as a ring: a fixed array and a start index, so no shifting.
  const history: (string | undefined)[] = new Array<string | undefined>(HISTORY_LIMIT);
  let historyStart = 0;
  let historyLength = 0;
  let lastJson = '';
  const clients = new Set<ServerResponse>();
  const counters = { skippedPushes: 0, refusedClients: 0 };

  const sample = (): string => {
    lastJson = JSON.stringify(options.snapshot());
    const at = (historyStart + historyLength) % HISTORY_LIMIT;
    history[at] = lastJson;
    if (historyLength < HISTORY_LIMIT) historyLength++;
    else historyStart = (historyStart + 1) % HISTORY_LIMIT;
    return lastJson;
  };
  const historyJson = (): string => {
    const parts: string[] = [];
    for (let i = 0; i < historyLength; i++) parts.push(history[(historyStart + i) % HISTORY_LIMIT] as string);
    return `[${parts.join(',')}]`;
  };

  sample();
  const timer = setInterval(() => {
    const previous = lastJson;
    let json: string;
    try {
      json = sample();
    } catch {
      return;
    }
    if (json === previous) return;
    for (const res of clients) {
      // A page that does not keep up misses this push rather than growing our buffers.
      if (res.writableNeedDrain) {
        counters.skippedPushes++;
        continue;
      }
      res.write(`data: ${json}\n\n`);
    }
  }, PUSH_INTERVAL_MS);
  timer.unref();

  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer): void => {
    res.writeHead(status, {
      'content-type': type,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Another site's page resolving its name to 127.0.0.1 (DNS rebinding) sends its own Host.
    if (!options.allowRemote && !isLoopback(hostOf(req.headers.host))) {
      send(res, 403, 'text/plain', 'forbidden host\n');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain', 'method not allowed\n');
      return;
    }
    switch (path) {
      case '/':
      case '/index.html':
        res.setHeader('content-security-policy', "default-src 'self'; style-src 'self' 'unsafe-inline'");
        send(res, 200, 'text/html; charset=utf-8', html);
        return;
      case '/app.js':
        send(res, 200, 'text/javascript; charset=utf-8', PAGE_SCRIPT);
        return;
      case '/app.css':
        send(res, 200, 'text/css; charset=utf-8', PAGE_STYLE);
        return;
      case '/uPlot.iife.min.js':
        send(res, 200, 'text/javascript; charset=utf-8', uplotJs);
        return;
      case '/uPlot.min.css':
        send(res, 200, 'text/css; charset=utf-8', uplotCss);
        return;
      case '/snapshot.json':
        send(res, 200, 'application/json', sample());
        return;
      case '/metrics':
        if (!options.metrics) {
          send(res, 404, 'text/plain', 'this command exposes no metrics\n');
          return;
        }
        send(res, 200, options.metrics.contentType, await options.metrics.metrics());
        return;
      case '/events':
        if (clients.size >= MAX_CLIENTS) {
          counters.refusedClients++;
          send(res, 503, 'text/plain', 'too many dashboard pages open\n');
          return;
        }
        res.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-store',
          connection: 'keep-alive',
        });
        res.write(`event: history\ndata: ${historyJson()}\n\n`);
        clients.add(res);
        req.on('close', () => clients.delete(res));
        return;
      default:
        send(res, 404, 'text/plain', 'not found\n');
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, 'text/plain', `${String(err)}\n`);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new MemshiftError(
          'MEMSHIFT_ERR_LISTEN',
          `cannot serve the dashboard on ${options.listen}: ${err.code ?? err.message}`,
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}/`;

  return {
    url,
    counters,
    close: async () => {
      clearInterval(timer);
      for (const res of clients) res.end();
      clients.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

function hostOf(header: string | undefined): string {
  if (!header) return '';
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::\d+)?$/.exec(header);
  return m ? ((m[1] ?? m[2]) as string) : '';
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
