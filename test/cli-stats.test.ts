import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MemcachedClient } from '../src/net/client.js';
import { freePort, startMemcached, type MemcachedServer } from './support/memcached.js';

const BIN = fileURLToPath(new URL('../../bin/memshift.js', import.meta.url));

function memshift(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('memshift stats', () => {
  let server: MemcachedServer;
  let deadPort: number;

  before(async () => {
    server = await startMemcached({ memoryMb: 32 });
    const client = new MemcachedClient(server.address);
    for (let i = 0; i < 10; i++) await client.set(`k${i}`, 'value');
    await client.get('k1');
    await client.get('k2');
    await client.get('absent');
    await client.close();
    deadPort = await freePort();
  });
  after(() => server.stop());

  it('prints a table for a live instance and exits 0', () => {
    const run = memshift('stats', server.address);
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trim().split('\n');
    assert.match(
      lines[0] ?? '',
      /^INSTANCE\s+STATE\s+VERSION\s+UPTIME\s+ITEMS\s+USED\s+LIMIT\s+HIT\s+CONNS\s+EVICTIONS$/,
    );
    const row = (lines[1] ?? '').split(/\s{2,}/);
    assert.equal(row[0], server.address);
    assert.equal(row[1], 'up');
    assert.match(row[2] ?? '', /^1\.\d+\.\d+$/);
    assert.equal(row[4], '10');
    assert.equal(row[6], '32.0 MiB');
    assert.equal(row[7], '66.7%');
  });

  it('reports JSON, a down instance with its reason, and exits 1', () => {
    const dead = `127.0.0.1:${deadPort}`;
    const run = memshift('stats', '--json', server.address, dead);
    assert.equal(run.status, 1);
    const reports = JSON.parse(run.stdout) as Record<string, unknown>[];
    assert.equal(reports.length, 2);
    assert.equal(reports[0]?.['up'], true);
    assert.equal(reports[0]?.['items'], 10);
    assert.equal(reports[0]?.['getHits'], 2);
    assert.equal(reports[0]?.['getMisses'], 1);
    assert.equal(reports[0]?.['limitBytes'], 32 * 1024 * 1024);
    assert.equal(reports[1]?.['up'], false);
    assert.match(String(reports[1]?.['error']), /connection refused/);
  });

  it('prints the down instance as one line in the table', () => {
    const run = memshift('stats', `127.0.0.1:${deadPort}`, server.address);
    assert.equal(run.status, 1);
    const lines = run.stdout.trim().split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[1] ?? '', new RegExp(`^127\\.0\\.0\\.1:${deadPort}  DOWN  .*connection refused`));
    assert.match(lines[2] ?? '', / {2}up {2}/);
  });

  it('reaches an instance on IPv6 loopback', async () => {
    const v6 = await startMemcached({ host: '::1' });
    try {
      const run = memshift('stats', '--json', v6.address);
      assert.equal(run.status, 0, run.stderr);
      const [report] = JSON.parse(run.stdout) as Record<string, unknown>[];
      assert.equal(report?.['address'], `[::1]:${v6.port}`);
      assert.equal(report?.['up'], true);
    } finally {
      await v6.stop();
    }
  });

  it('gives one clear line for a bad address, without a stack trace', () => {
    const run = memshift('stats', 'localhost:notaport');
    assert.equal(run.status, 2);
    assert.equal(run.stderr.trim().split('\n').length, 1);
    assert.match(
      run.stderr,
      /^memshift: bad server address "localhost:notaport": port .notaport. in .* is not 1-65535/,
    );
  });

  it('refuses a bad timeout with one line', () => {
    const run = memshift('stats', '--timeout', 'soon', server.address);
    assert.equal(run.status, 2);
    assert.match(run.stderr.trim(), /^memshift: --timeout must be a whole number of milliseconds/);
  });
});
