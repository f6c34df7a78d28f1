/**
 * Prometheus metrics for memshift's long-running commands, on prom-client.
 *
 * Instance statistics reuse memcached_exporter's names and types
 * (memcached_up, memcached_current_items, memcached_commands_total{command,
 * status}, ...) so dashboards built for it keep working; memshift scrapes
 * many instances from one process, so each series also carries `server`
 * (host:port) and `pool`. Figures of memshift's own are named memshift_*,
 * with _total for counters and base units (seconds, bytes, ratios 0..1).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { InstanceRow, InstanceUp, TopSnapshot } from '../jobs/top.js';

export { Registry };

/** A registry for one command; process_* and nodejs_* come along unless turned off. */
export function createMetricsRegistry(options: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  return registry;
}

type Labels = { server: string; pool: string };

/** memcached_exporter's `memcached_commands_total{command,status}` series, from stats counter names. */
const COMMANDS: readonly (readonly [stat: string, command: string, status: string])[] = [
  ['get_hits', 'get', 'hit'],
  ['get_misses', 'get', 'miss'],
  ['get_expired', 'get', 'expired'],
  ['get_flushed', 'get', 'flushed'],
  ['cmd_set', 'set', 'hit'],
  ['delete_hits', 'delete', 'hit'],
  ['delete_misses', 'delete', 'miss'],
  ['incr_hits', 'incr', 'hit'],
  ['incr_misses', 'incr', 'miss'],
  ['decr_hits', 'decr', 'hit'],
  ['decr_misses', 'decr', 'miss'],
  ['cas_hits', 'cas', 'hit'],
  ['cas_misses', 'cas', 'miss'],
  ['cas_badval', 'cas', 'badval'],
  ['touch_hits', 'touch', 'hit'],
  ['touch_misses', 'touch', 'miss'],
  ['cmd_flush', 'flush', 'hit'],
];

/** Gauges and counters copied from one stats field each: [metric name, help, stats field]. */
const GAUGES: readonly (readonly [string, string, string])[] = [
  ['memcached_uptime_seconds', 'Number of seconds since the server started.', 'uptime'],
  ['memcached_time_seconds', "The server's clock, unix seconds.", 'time'],
  ['memcached_current_items', 'Current number of items stored by this instance.', 'curr_items'],
  ['memcached_current_bytes', 'Current number of bytes used to store items.', 'bytes'],
  ['memcached_limit_bytes', 'Number of bytes this server is allowed to use for storage.', 'limit_maxbytes'],
  ['memcached_current_connections', 'Current number of open connections.', 'curr_connections'],
];

const COUNTERS: readonly (readonly [string, string, string])[] = [
  ['memcached_items_total', 'Total number of items stored during the life of this instance.', 'total_items'],
  [
    'memcached_items_evicted_total',
    'Total number of valid items removed from cache to free memory for new items.',
    'evictions',
  ],
  [
    'memcached_items_reclaimed_total',
    'Total number of times an entry was stored using memory from an expired entry.',
    'reclaimed',
  ],
  [
    'memcached_connections_total',
    'Total number of connections opened since the server started running.',
    'total_connections',
  ],
  ['memcached_read_bytes_total', 'Total number of bytes read by this server from network.', 'bytes_read'],
  ['memcached_written_bytes_total', 'Total number of bytes sent by this server to network.', 'bytes_written'],
];

function statValue(row: InstanceUp, field: string): number | undefined {
  const text = row.raw[field];
  if (text === undefined) return undefined;
  const value = Number(text);
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * Registers memcached_exporter's instance metrics and memshift_top_* figures,
 * read at scrape time from the latest snapshot (nothing is polled for a scrape).
 */
export function registerTopMetrics(registry: Registry, latest: () => TopSnapshot | undefined): void {
  const rows = (): InstanceRow[] => latest()?.pools.flatMap((p) => [...p.instances]) ?? [];
  const upRows = (): InstanceUp[] => rows().filter((r): r is InstanceUp => r.up);
  const labels = (r: InstanceRow): Labels => ({ server: r.address, pool: r.pool });
  const names = ['server', 'pool'] as const;

  new Gauge({
    name: 'memcached_up',
    help: 'Could the memcached server be reached.',
    labelNames: names,
    registers: [registry],
    collect() {
      this.reset();
      for (const r of rows()) this.set(labels(r), r.up ? 1 : 0);
    },
  });
  new Gauge({
    name: 'memcached_version',
    help: 'The version of this memcached server.',
    labelNames: [...names, 'version'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of upRows()) this.set({ ...labels(r), version: r.version }, 1);
    },
  });
  for (const [name, help, field] of GAUGES) {
    new Gauge({
      name,
      help,
      labelNames: names,
      registers: [registry],
      collect() {
        this.reset();
        for (const r of upRows()) {
          const value = statValue(r, field);
          if (value !== undefined) this.set(labels(r), value);
        }
      },
    });
  }
  // The server keeps these totals; a scrape reports them as they are, so the
  // counter is rebuilt from the last reply rather than incremented.
  for (const [name, help, field] of COUNTERS) {
    new Counter({
      name,
      help,
      labelNames: names,
      registers: [registry],
      collect() {
        this.reset();
        for (const r of upRows()) {
          const value = statValue(r, field);
          if (value !== undefined) this.inc(labels(r), value);
        }
      },
    });
  }
  new Counter({
    name: 'memcached_commands_total',
    help: 'Total number of all requests broken down by command (get, set, etc.) and status.',
    labelNames: [...names, 'command', 'status'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of upRows()) {
        for (const [field, command, status] of COMMANDS) {
          const value = statValue(r, field);
          if (value !== undefined) this.inc({ ...labels(r), command, status }, value);
        }
      }
    },
  });

  new Gauge({
    name: 'memshift_stats_rtt_seconds',
    help: 'Round trip of the last stats call to the instance.',
    labelNames: names,
    registers: [registry],
    collect() {
      this.reset();
      for (const r of upRows()) this.set(labels(r), r.rttMs / 1000);
    },
  });
  new Gauge({
    name: 'memshift_hit_ratio',
    help: 'get hits over all gets during the last polling interval (0..1).',
    labelNames: names,
    registers: [registry],
    collect() {
      this.reset();
      for (const r of upRows()) {
        if (r.rates?.hitRatio !== undefined) this.set(labels(r), r.rates.hitRatio);
      }
    },
  });
  new Gauge({
    name: 'memshift_pool_fill_ratio',
    help: 'The new pool against the old one: items or bytes held by the new pool over the old pool.',
    labelNames: ['from', 'to', 'basis'],
    registers: [registry],
    collect() {
      this.reset();
      const fill = latest()?.fill;
      if (!fill) return;
      if (fill.items !== undefined) this.set({ from: fill.from, to: fill.to, basis: 'items' }, fill.items);
      if (fill.bytes !== undefined) this.set({ from: fill.from, to: fill.to, basis: 'bytes' }, fill.bytes);
    },
  });
  new Counter({
    name: 'memshift_top_polls_total',
    help: 'Polling rounds made over all instances.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(latest()?.poll ?? 0);
    },
  });
}

/** A metric name part from a dashboard name: lower case, runs of anything else as one underscore. */
export function metricNamePart(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

/**
 * Exposes a long-running command's dashboard figures as Prometheus metrics,
 * read at scrape time, so the page and /metrics never disagree:
 *   counter `group/series` -> memshift_<command>_<group>_total{series="<series>"}
 *   gauge   `group/series` -> memshift_<command>_<group>{series="<series>"}
 * A name without a slash has no series label. Name gauges with their unit
 * ('lag seconds', 'coverage ratio') so the metric reads right.
 */
export function registerSnapshotMetrics(
  registry: Registry,
  command: string,
  snapshot: () => {
    readonly counters: Readonly<Record<string, number>>;
    readonly gauges: Readonly<Record<string, number>>;
  },
): void {
  const prefix = `memshift_${metricNamePart(command)}_`;
  const families = new Set<string>();
  const split = (name: string): { metric: string; series: string | undefined } => {
    const slash = name.indexOf('/');
    return slash < 0
      ? { metric: metricNamePart(name), series: undefined }
      : { metric: metricNamePart(name.slice(0, slash)), series: name.slice(slash + 1) };
  };
  // Families are known from the first snapshot; one that appears later is registered then.
  const ensure = (): void => {
    const now = snapshot();
    for (const [kind, values] of [
      ['counter', now.counters],
      ['gauge', now.gauges],
    ] as const) {
      for (const name of Object.keys(values)) {
        const { metric } = split(name);
        const full = kind === 'counter' ? `${prefix}${metric}_total` : `${prefix}${metric}`;
        if (families.has(full)) continue;
        families.add(full);
        const read = (): [Record<string, string>, number][] => {
          const current = kind === 'counter' ? snapshot().counters : snapshot().gauges;
          const out: [Record<string, string>, number][] = [];
          for (const [n, v] of Object.entries(current)) {
            const part = split(n);
            if (part.metric !== metric || !Number.isFinite(v)) continue;
            out.push([part.series === undefined ? {} : { series: part.series }, v]);
          }
          return out;
        };
        const help = `memshift ${command}: ${metric.replace(/_/g, ' ')}${kind === 'counter' ? ' (running total)' : ''}.`;
        // Always declared, so a figure with a series and one without can share a metric.
        const labelNames = ['series'];
        if (kind === 'counter') {
          new Counter({
            name: full,
            help,
            labelNames,
            registers: [registry],
            collect() {
              this.reset();
              for (const [labels, v] of read()) if (v >= 0) this.inc(labels, v);
            },
          });
        } else {
          new Gauge({
            name: full,
            help,
            labelNames,
            registers: [registry],
            collect() {
              this.reset();
              for (const [labels, v] of read()) this.set(labels, v);
            },
          });
        }
      }
    }
  };
  ensure();
  // Checked again at each scrape for names that appeared since.
  new Gauge({
    name: `${prefix}dashboard_series`,
    help: `memshift ${command}: figures exposed from the command's dashboard.`,
    registers: [registry],
    collect() {
      ensure();
      this.set(families.size);
    },
  });
}
