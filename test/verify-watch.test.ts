/**
 * `verify --watch`: coverage tracked over time with the projected time to the
 * target, pure (the fit) and live (real memcached, the new pool filled between
 * rounds, the JSON lines, the dashboard's /metrics).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CoverageTrend } from '../src/jobs/coverage-trend.js';
import { MemcachedClient } from '../src/net/client.js';
import { start } from './support/cli.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

const at = (s: number, keys: number, bytes = keys, recent = keys) => ({ at: s * 1000, keys, bytes, recent });

describe('coverage trend', () => {
  it('projects the time to the target from the fitted rate', () => {
    const trend = new CoverageTrend(0.9);
    assert.equal(trend.project('keys').secondsToTarget, undefined, 'no sample yet');
    trend.add(at(0, 0.5, 0.2, 0.9));
    assert.equal(trend.project('keys').secondsToTarget, undefined, 'one sample gives no rate');
    trend.add(at(60, 0.6, 0.2, 0.95));
    trend.add(at(120, 0.7, 0.1, 0.97));
    const keys = trend.project('keys');
    assert.ok(Math.abs(keys.secondsToTarget! - 120) < 1e-6, String(keys.secondsToTarget));
    assert.ok(Math.abs(keys.perHour! - 6) < 1e-9);
    assert.equal(trend.project('bytes').secondsToTarget, undefined, 'falling: no projection');
    assert.equal(trend.project('recent').secondsToTarget, 0, 'reached');
  });

  it('fits the last samples only', () => {
    const trend = new CoverageTrend(1, 3);
    trend.add(at(0, 0));
    trend.add(at(1, 0.5)); // an early burst
    for (let s = 2; s <= 4; s++) trend.add(at(s, 0.5 + (s - 1) * 0.01));
    assert.equal(trend.count, 3);
    assert.ok(Math.abs(trend.project('keys').secondsToTarget! - (1 - 0.53) / 0.01) < 1e-6);
  });
});

describe('verify --watch (real memcached)', () => {
  let old: MemcachedServer;
  let fresh: MemcachedServer;
  let onOld: MemcachedClient;
  let onNew: MemcachedClient;

  before(async () => {
    old = await startMemcached();
    fresh = await startMemcached();
    onOld = new MemcachedClient(old.address);
    onNew = new MemcachedClient(fresh.address);
    for (let i = 0; i < 200; i++) await onOld.set(`w:${i}`, 'x'.repeat(100));
    for (let i = 0; i < 50; i++) await onNew.set(`w:${i}`, 'x'.repeat(100));
  });
  after(async () => {
    onOld.destroy();
    onNew.destroy();
    await old.stop();
    await fresh.stop();
  });

  it('reports rising coverage each round with the time left at that rate, and serves it', async () => {
    const run = start([
      'verify',
      '--from',
      old.address,
      '--to',
      fresh.address,
      '--watch',
      '1',
      '--rounds',
      '3',
      '--sample',
      '0',
      '--no-placement',
      '--json',
      '--web',
      '127.0.0.1:0',
    ]);
    const url = await run.dashboardUrl();
    const lines = async (n: number): Promise<void> => {
      for (let i = 0; i < 200 && run.stdout().trim().split('\n').filter(Boolean).length < n; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    // Another quarter of the keys reaches the new pool after each of the first two rounds.
    let metrics = '';
    for (const [round, upTo] of [
      [1, 100],
      [2, 150],
    ] as const) {
      await lines(round);
      // After two rounds the rate is known: the time to the target is served too.
      if (round === 2) metrics = await (await fetch(`${url}metrics`)).text();
      for (let i = upTo - 50; i < upTo; i++) await onNew.set(`w:${i}`, 'x'.repeat(100));
    }
    await lines(3);
    assert.equal(await run.exited, 1, run.stderr()); // 75% is below the default 99%
    const rounds = run
      .stdout()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { round: number; keys: { coverage: number; secondsToTarget?: number } });
    assert.deepEqual(
      rounds.map((r) => [r.round, r.keys.coverage]),
      [
        [1, 0.25],
        [2, 0.5],
        [3, 0.75],
      ],
    );
    assert.equal(rounds[0]!.keys.secondsToTarget, undefined);
    const eta = rounds[2]!.keys.secondsToTarget!;
    // 25 points per round of about a second: 99% is about one more second away.
    assert.ok(eta > 0 && eta < 5, String(eta));
    assert.match(metrics, /memshift_verify\S*coverage\S*keys\S* 0\.\d+/);
    assert.match(metrics, /memshift_verify\S*seconds_to_target\S*/);
  });
});
