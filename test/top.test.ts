import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { TopPoller, type InstanceUp, type TopSnapshot } from '../src/jobs/top.js';
import { MemcachedClient } from '../src/net/client.js';
import { renderTop } from '../src/ui/top-view.js';
import { freePort, startMemcached, type MemcachedServer } from './support/memcached.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const COMMAND = new URL('../src/ui/commands/top.js', import.meta.url).href;

/**
 * Runs `memshift top` through its own command registration, so the test does
 * not depend on the command being wired into the main command line yet.
 */
function topScript(): string {
  return (
    `import { Command } from 'commander';` +
    `import { MemshiftError } from '${new URL('../src/protocol/errors.js', import.meta.url).href}';` +
    `import { registerTop } from '${COMMAND}';` +
    `const out = { write: (t) => console.log(t), exitCode: 0 };` +
    `const program = new Command('memshift').exitOverride();` +
    `registerTop(program, out);` +
    `try { await program.parseAsync(process.argv.slice(1), { from: 'user' }); process.exitCode = out.exitCode; }` +
    `catch (err) { if (!(err instanceof MemshiftError)) throw err; process.stderr.write('memshift: ' + err.message + '\\n'); process.exitCode = 2; }`
  );
}

function top(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', topScript(), '--', 'top', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

function up(snapshot: TopSnapshot, address: string): InstanceUp {
  for (const pool of snapshot.pools) {
    for (const row of pool.instances) if (row.address === address && row.up) return row;
  }
  assert.fail(`${address} is not up in the snapshot`);
}

describe('top poller', () => {
  let a: MemcachedServer;
  let b: MemcachedServer;
  before(async () => {
    [a, b] = await Promise.all([startMemcached({ memoryMb: 16 }), startMemcached({ memoryMb: 32 })]);
  });
  after(async () => {
    await Promise.all([a.stop(), b.stop()]);
  });

  it('reports the hit ratio and rates of the last interval, not since boot', async () => {
    const client = new MemcachedClient(a.address);
    const other = new MemcachedClient(b.address);
    // Before the first poll: all misses, which an interval ratio must not count.
    for (let i = 0; i < 20; i++) await client.get(`before-${i}`);
    const poller = new TopPoller(
      [
        { name: 'old', addresses: [a.address] },
        { name: 'new', addresses: [b.address] },
      ],
      { timeoutMs: 2000 },
    );
    try {
      const first = await poller.poll();
      assert.equal(up(first, a.address).rates, undefined);
      for (let i = 0; i < 8; i++) await client.set(`k${i}`, 'x'.repeat(100));
      for (let i = 0; i < 2; i++) await other.set(`k${i}`, 'x'.repeat(100));
      for (let i = 0; i < 6; i++) await client.get(`k${i}`);
      for (let i = 0; i < 2; i++) await client.get(`missing-${i}`);
      const second = await poller.poll();
      const row = up(second, a.address);
      const rates = row.rates;
      assert.ok(rates);
      assert.equal(rates.lookups, 8);
      assert.equal(rates.hitRatio, 6 / 8);
      assert.ok(Math.abs(rates.getsPerSec * rates.seconds - 8) < 1e-6);
      assert.ok(Math.abs(rates.setsPerSec * rates.seconds - 8) < 1e-6);
      assert.equal(rates.evictionsPerSec, 0);
      assert.ok(rates.readBytesPerSec > 0 && rates.writtenBytesPerSec > 0);
      assert.equal(row.items, 8);
      assert.equal(row.limitBytes, 16 * 1024 * 1024);
      assert.ok(row.rttMs > 0);
      const [oldPool, newPool] = second.pools;
      assert.equal(oldPool?.totals.items, 8);
      assert.equal(oldPool?.hitRatio, 0.75);
      assert.equal(newPool?.totals.items, 2);
      assert.equal(newPool?.hitRatio, undefined, 'no gets on the new pool in the interval');
      assert.deepEqual(
        { from: second.fill?.from, to: second.fill?.to, items: second.fill?.items },
        { from: 'old', to: 'new', items: 2 / 8 },
      );
      assert.ok(Math.abs((second.fill?.bytes ?? 0) - up(second, b.address).bytes / row.bytes) < 1e-9);
    } finally {
      poller.close();
      await client.close();
      await other.close();
    }
  });

  it('shows an instance that stops answering as DOWN with the reason, and again up when it returns', async () => {
    const server = await startMemcached();
    const poller = new TopPoller([{ name: 'p', addresses: [server.address, a.address] }], { timeoutMs: 300 });
    try {
      assert.equal((await poller.poll()).pools[0]?.up, 2);
      server.process.kill('SIGSTOP');
      const stopped = await poller.poll();
      const row = stopped.pools[0]?.instances.find((r) => r.address === server.address);
      assert.equal(row?.up, false);
      assert.match(row.up ? '' : row.error, /timed out after 300 ms/);
      assert.equal(stopped.pools[0]?.down, 1);
      assert.equal(stopped.pools[0]?.totals.items, up(stopped, a.address).items);
      const lines = renderTop(stopped, { column: 0, descending: false });
      const down = lines.find((l) => l.style === 'down');
      assert.match(
        down?.text ?? '',
        new RegExp(
          `^${server.address.replace(/\./g, '\\.')}\\s+DOWN\\s+(connect \\(for stats\\) failed: )?stats timed out`,
        ),
      );
      server.process.kill('SIGCONT');
      let back = false;
      // Polls come an interval apart, as in top; a redial in backoff fails fast meanwhile.
      for (let i = 0; i < 50 && !back; i++) {
        await sleep(100);
        back = (await poller.poll()).pools[0]?.up === 2;
      }
      assert.ok(back, 'the instance came back up');
    } finally {
      poller.close();
      await server.stop();
    }
  });

  it('sorts instances by the chosen column within their pool, DOWN rows last', () => {
    const row = (address: string, items: number): InstanceUp => ({
      address,
      pool: 'p',
      up: true,
      version: '1.6.18',
      uptimeSeconds: 1,
      serverTime: 1,
      items,
      bytes: items * 10,
      limitBytes: 1000,
      connections: 1,
      rttMs: 1,
      counters: {
        getHits: 0,
        getMisses: 0,
        cmdGet: 0,
        cmdSet: 0,
        evictions: 0,
        bytesRead: 0,
        bytesWritten: 0,
      },
      raw: {},
      rates: undefined,
    });
    const instances = [
      row('10.0.0.1:11211', 5),
      { address: '10.0.0.9:11211', pool: 'p', up: false as const, error: 'connection refused' },
      row('10.0.0.2:11211', 50),
      row('10.0.0.3:11211', 20),
    ];
    const snapshot: TopSnapshot = {
      time: 0,
      poll: 1,
      fill: undefined,
      pools: [
        {
          name: 'p',
          instances,
          up: 3,
          down: 1,
          totals: {
            items: 75,
            bytes: 750,
            limitBytes: 3000,
            connections: 3,
            getsPerSec: 0,
            setsPerSec: 0,
            evictionsPerSec: 0,
            readBytesPerSec: 0,
            writtenBytesPerSec: 0,
          },
          hitRatio: undefined,
          meanRttMs: 1,
          meanItems: 25,
        },
      ],
    };
    const order = (descending: boolean): string[] =>
      renderTop(snapshot, { column: 6, descending })
        .filter((l) => l.style === 'row' || l.style === 'down')
        .map((l) => l.text.split(/\s+/)[0]!);
    assert.deepEqual(order(true), ['10.0.0.2:11211', '10.0.0.3:11211', '10.0.0.1:11211', '10.0.0.9:11211']);
    assert.deepEqual(order(false), ['10.0.0.1:11211', '10.0.0.3:11211', '10.0.0.2:11211', '10.0.0.9:11211']);
    const header = renderTop(snapshot, { column: 6, descending: true })[0]?.text ?? '';
    assert.match(header, /\[ITEMS\]/);
    const totals = renderTop(snapshot, { column: 6, descending: true }).filter((l) => l.style === 'total');
    assert.match(totals[0]?.text ?? '', /^p total\s+3\/4 up\s+750 B\s+25\.0%\s+75\s/);
    assert.match(totals[1]?.text ?? '', /^p mean\s+250 B\s+25\s/);
  });
});

describe('memshift top --once', () => {
  let a: MemcachedServer;
  let b: MemcachedServer;
  let deadPort: number;
  before(async () => {
    [a, b] = await Promise.all([startMemcached({ memoryMb: 16 }), startMemcached({ memoryMb: 24 })]);
    const client = new MemcachedClient(a.address);
    for (let i = 0; i < 30; i++) await client.set(`key-${i}`, `value-${i}`, { flags: i });
    await client.close();
    deadPort = await freePort();
  });
  after(async () => {
    await Promise.all([a.stop(), b.stop()]);
  });

  it('--json agrees with what stats says', async () => {
    const run = top('--once', '--json', '--interval', '200', a.address, `${b.address},127.0.0.1:${deadPort}`);
    assert.equal(run.status, 1, `a down instance makes the status 1: ${run.stderr}`);
    const snapshot = JSON.parse(run.stdout) as TopSnapshot;
    const check = new MemcachedClient(a.address);
    const stats = await check.stats();
    await check.close();
    const row = up(snapshot, a.address);
    assert.equal(row.version, stats.get('version'));
    assert.equal(row.items, Number(stats.get('curr_items')));
    assert.equal(row.bytes, Number(stats.get('bytes')));
    assert.equal(row.limitBytes, Number(stats.get('limit_maxbytes')));
    assert.equal(row.counters.cmdSet, Number(stats.get('cmd_set')));
    assert.equal(row.counters.getHits, Number(stats.get('get_hits')));
    assert.ok(row.uptimeSeconds <= Number(stats.get('uptime')));
    assert.ok(row.rates, 'two polls give interval rates');
    assert.equal(row.rates.setsPerSec, 0, 'nothing was set between the two polls');
    assert.equal('raw' in row, false);
    assert.equal(snapshot.pools.length, 2);
    const dead = snapshot.pools[1]?.instances.find((r) => r.address === `127.0.0.1:${deadPort}`);
    assert.equal(dead?.up, false);
    assert.match(dead.up ? '' : dead.error, /connection refused/);
    assert.equal(snapshot.fill?.items, 0);
  });

  it('prints a plain table without a terminal', () => {
    const run = top('--once', '--interval', '200', '--sort', 'items', a.address, b.address);
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^memshift top {2}\d{4}-\d\d-\d\dT.* poll 2$/);
    assert.match(
      lines[1] ?? '',
      /^INSTANCE\s+STATE\s+VERSION\s+UPTIME\s+USED\s+MEM%\s+\[ITEMS\]\s+HIT\s+GET\/s/,
    );
    assert.match(
      lines[2] ?? '',
      new RegExp(`^${a.address.replace(/\./g, '\\.')}\\s+up\\s+1\\.\\d+\\.\\d+\\s.*\\s30\\s`),
    );
    assert.match(run.stdout, /fill .* items \[\.+\]\s+0\.0%/);
  });

  it('refuses a bad option with one line', () => {
    const run = top('--once', '--sort', 'colour', a.address);
    assert.equal(run.status, 2);
    assert.match(run.stderr.trim(), /^memshift: --sort must be one of instance, state/);
  });
});
