import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TopPoller } from '../src/jobs/top.js';
import { MemcachedClient } from '../src/net/client.js';
import { startDashboard, type Dashboard } from '../src/ui/dashboard/server.js';
import { createMetricsRegistry, registerSnapshotMetrics, registerTopMetrics } from '../src/ui/metrics.js';
import { freePort, startMemcached, type MemcachedServer } from './support/memcached.js';

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

interface Family {
  type: string;
  help: string | undefined;
  readonly samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

function familyOf(sample: string, families: Map<string, Family>): string {
  for (const suffix of ['_bucket', '_sum', '_count', '_created']) {
    if (sample.endsWith(suffix)) {
      const base = sample.slice(0, -suffix.length);
      const type = families.get(base)?.type;
      if (type === 'histogram' || type === 'summary') return base;
    }
  }
  return sample;
}

function parseValue(text: string, line: number): number {
  // Prometheus reads values with Go's ParseFloat, which takes NaN and Inf in any case
  // (prom-client writes "Nan" for an event loop not yet measured).
  if (/^\+?inf$/i.test(text)) return Infinity;
  if (/^-inf$/i.test(text)) return -Infinity;
  if (/^nan$/i.test(text)) return NaN;
  assert.match(text, /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/, `line ${line}: bad value "${text}"`);
  return Number(text);
}

/**
 * A strict reader of the Prometheus text exposition format (0.0.4): HELP and
 * TYPE at most once per family and before its samples, a family's samples
 * together, valid names, quoted and escaped label values, no duplicate series.
 */
function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  const series = new Set<string>();
  let current: string | undefined;
  assert.ok(text.endsWith('\n'), 'the exposition ends with a line feed');
  const lines = text.slice(0, -1).split('\n');
  const open = (name: string, line: number): Family => {
    if (current !== name) {
      assert.ok(!closed.has(name), `line ${line}: ${name} appears again after other families`);
      if (current !== undefined) closed.add(current);
      current = name;
    }
    let family = families.get(name);
    if (!family) {
      family = { type: 'untyped', help: undefined, samples: [] };
      families.set(name, family);
    }
    return family;
  };
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
      if (!m) return;
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      assert.match(name, NAME, `line ${line}: bad metric name`);
      const family = open(name, line);
      if (kind === 'HELP') {
        assert.equal(family.help, undefined, `line ${line}: second HELP for ${name}`);
        assert.doesNotMatch(rest.replace(/\\[\\n]/g, ''), /\\/, `line ${line}: bad escape in HELP`);
        family.help = rest;
      } else {
        assert.ok(TYPES.includes(rest), `line ${line}: unknown type ${rest}`);
        assert.equal(family.samples.length, 0, `line ${line}: TYPE after samples of ${name}`);
        family.type = rest;
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(raw);
    assert.ok(m, `line ${line}: not a sample: ${raw}`);
    const name = m[1]!;
    const labels: Record<string, string> = {};
    let rest = m[3] ?? '';
    while (rest.length > 0) {
      const l = /^([^=]+)="((?:[^"\\]|\\[\\"n])*)"(,|$)/.exec(rest);
      assert.ok(l, `line ${line}: bad labels: ${rest}`);
      const label = l[1]!;
      assert.match(label, LABEL, `line ${line}: bad label name ${label}`);
      assert.ok(!(label in labels), `line ${line}: label ${label} twice`);
      labels[label] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      rest = rest.slice(l[0].length);
    }
    const value = parseValue(m[4]!, line);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    assert.ok(!series.has(key), `line ${line}: duplicate series ${key}`);
    series.add(key);
    open(familyOf(name, families), line).samples.push({ name, labels, value });
  });
  return families;
}

function value(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string>,
): number | undefined {
  const found = families
    .get(name)
    ?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return found?.value;
}

describe('Prometheus /metrics', () => {
  let a: MemcachedServer;
  let b: MemcachedServer;
  let dead: string;
  let poller: TopPoller;
  let dashboard: Dashboard;

  before(async () => {
    [a, b] = await Promise.all([startMemcached({ memoryMb: 16 }), startMemcached({ memoryMb: 8 })]);
    dead = `127.0.0.1:${await freePort()}`;
    const client = new MemcachedClient(a.address);
    for (let i = 0; i < 12; i++) await client.set(`k${i}`, 'v'.repeat(i + 1));
    for (let i = 0; i < 4; i++) await client.get(`k${i}`);
    await client.get('absent');
    await client.delete('k11');
    await client.delete('absent');
    await client.close();
    const other = new MemcachedClient(b.address);
    for (let i = 0; i < 3; i++) await other.set(`k${i}`, 'v');
    await other.close();
    poller = new TopPoller(
      [
        { name: 'old', addresses: [a.address] },
        { name: 'new', addresses: [b.address, dead] },
      ],
      { timeoutMs: 1000 },
    );
    await poller.poll();
    await poller.poll();
    const registry = createMetricsRegistry();
    registerTopMetrics(registry, () => poller.snapshot);
    dashboard = await startDashboard({
      listen: '127.0.0.1:0',
      title: 'metrics test',
      snapshot: () => ({ time: Date.now(), counters: {}, gauges: {} }),
      metrics: registry,
    });
  });
  after(async () => {
    poller.close();
    await dashboard.close();
    await Promise.all([a.stop(), b.stop()]);
  });

  it('parses strictly and uses memcached_exporter names and types', async () => {
    const res = await fetch(`${dashboard.url}metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusText(await res.text());
    const expected: Record<string, string> = {
      memcached_up: 'gauge',
      memcached_version: 'gauge',
      memcached_uptime_seconds: 'gauge',
      memcached_time_seconds: 'gauge',
      memcached_current_items: 'gauge',
      memcached_current_bytes: 'gauge',
      memcached_limit_bytes: 'gauge',
      memcached_current_connections: 'gauge',
      memcached_items_total: 'counter',
      memcached_items_evicted_total: 'counter',
      memcached_items_reclaimed_total: 'counter',
      memcached_connections_total: 'counter',
      memcached_read_bytes_total: 'counter',
      memcached_written_bytes_total: 'counter',
      memcached_commands_total: 'counter',
      memshift_stats_rtt_seconds: 'gauge',
      memshift_hit_ratio: 'gauge',
      memshift_pool_fill_ratio: 'gauge',
      memshift_top_polls_total: 'counter',
    };
    for (const [name, type] of Object.entries(expected)) {
      assert.equal(families.get(name)?.type, type, name);
      assert.ok(families.get(name)?.help, `${name} has help`);
    }
    for (const [name, family] of families) {
      if (!name.startsWith('memshift_') && !name.startsWith('memcached_')) continue;
      if (family.type === 'counter') assert.match(name, /_total$/, `counter ${name} ends in _total`);
      else assert.doesNotMatch(name, /_total$/, `${family.type} ${name} does not end in _total`);
      assert.match(name, /^[a-z_]+$/);
    }
    // The process metrics ride along.
    assert.equal(families.get('process_cpu_user_seconds_total')?.type, 'counter');
  });

  it('reports each instance under its server and pool, a dead one as memcached_up 0', async () => {
    const families = parsePrometheusText(await (await fetch(`${dashboard.url}metrics`)).text());
    const check = new MemcachedClient(a.address);
    const stats = await check.stats();
    await check.close();
    const A = { server: a.address, pool: 'old' };
    assert.equal(value(families, 'memcached_up', A), 1);
    assert.equal(value(families, 'memcached_up', { server: b.address, pool: 'new' }), 1);
    assert.equal(value(families, 'memcached_up', { server: dead, pool: 'new' }), 0);
    assert.equal(value(families, 'memcached_current_items', { server: dead }), undefined);
    assert.equal(value(families, 'memcached_current_items', A), 11);
    assert.equal(value(families, 'memcached_current_items', { server: b.address }), 3);
    assert.equal(value(families, 'memcached_limit_bytes', A), 16 * 1024 * 1024);
    assert.equal(value(families, 'memcached_current_bytes', A), Number(stats.get('bytes')));
    assert.equal(value(families, 'memcached_version', { ...A, version: stats.get('version')! }), 1);
    const command = (c: string, s: string): number | undefined =>
      value(families, 'memcached_commands_total', { ...A, command: c, status: s });
    assert.equal(command('get', 'hit'), 4);
    assert.equal(command('get', 'miss'), 1);
    assert.equal(command('set', 'hit'), 12);
    assert.equal(command('delete', 'hit'), 1);
    assert.equal(command('delete', 'miss'), 1);
    assert.equal(value(families, 'memcached_items_evicted_total', A), 0);
    assert.equal(value(families, 'memcached_items_total', A), 12);
    assert.ok((value(families, 'memcached_read_bytes_total', A) ?? 0) > 0);
    assert.ok((value(families, 'memshift_stats_rtt_seconds', A) ?? 0) > 0);
    assert.equal(
      value(families, 'memshift_pool_fill_ratio', { from: 'old', to: 'new', basis: 'items' }),
      3 / 11,
    );
    assert.equal(value(families, 'memshift_top_polls_total', {}), 2);
  });
});

describe("a command's dashboard figures as metrics", () => {
  it('names counters memshift_<command>_<group>_total and gauges memshift_<command>_<group>, series as a label', async () => {
    let figures = {
      counters: { mirrored: 10, 'dropped/queue full': 2, 'dropped/closed': 1 } as Record<string, number>,
      gauges: { 'lag seconds': 0.5, 'coverage ratio/10.0.0.1:11211': 0.25 } as Record<string, number>,
    };
    const registry = createMetricsRegistry({ processMetrics: false });
    registerSnapshotMetrics(registry, 'mirror', () => figures);
    let families = parsePrometheusText(await registry.metrics());
    assert.equal(families.get('memshift_mirror_mirrored_total')?.type, 'counter');
    assert.equal(value(families, 'memshift_mirror_mirrored_total', {}), 10);
    assert.equal(value(families, 'memshift_mirror_dropped_total', { series: 'queue full' }), 2);
    assert.equal(value(families, 'memshift_mirror_dropped_total', { series: 'closed' }), 1);
    assert.equal(families.get('memshift_mirror_lag_seconds')?.type, 'gauge');
    assert.equal(value(families, 'memshift_mirror_lag_seconds', {}), 0.5);
    assert.equal(value(families, 'memshift_mirror_coverage_ratio', { series: '10.0.0.1:11211' }), 0.25);
    // Scrapes read the figures of the moment, and pick up names that appear later.
    figures = { counters: { ...figures.counters, mirrored: 25, applied: 20 }, gauges: figures.gauges };
    await registry.metrics();
    families = parsePrometheusText(await registry.metrics());
    assert.equal(value(families, 'memshift_mirror_mirrored_total', {}), 25);
    assert.equal(value(families, 'memshift_mirror_applied_total', {}), 20);
  });
});
