/** `memshift repair` as a user runs it: help, summary, exit status, one-line errors, Ctrl-C and --resume. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RepairReport } from '../src/jobs/repair.js';
import { freePort, startMemcached, type MemcachedServer } from './support/memcached.js';
import { memshift, start } from './support/cli.js';
import { audit, ketamaPool, load, PoolClients } from './support/pool-audit.js';

describe('memshift repair (command line, real memcached)', () => {
  const servers: MemcachedServer[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'memshift-repair-cli-'));
  let src: PoolClients;
  let dst: PoolClients;
  const from = (): string => servers[0]!.address;
  const to = (): string => `${servers[1]!.address},${servers[2]!.address}`;

  before(async () => {
    for (let i = 0; i < 3; i++) servers.push(await startMemcached({ memoryMb: 64 }));
    src = new PoolClients(ketamaPool([from()]));
    dst = new PoolClients(ketamaPool(to().split(',')));
  });
  after(async () => {
    await src.close();
    await dst.close();
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('is in the help, which says when to run it', () => {
    assert.match(memshift(['--help']).stdout, /\brepair\b/);
    const help = memshift(['repair', '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /just before the switch/);
    assert.match(help.stdout, /--rate <keys>/);
    assert.match(help.stdout, /--resume/);
  });

  it('prints what it removed and exits 0 when every key was checked', async () => {
    await src.flush();
    await dst.flush();
    const keys = Array.from({ length: 1000 }, (_, i) => `cli:${i}`);
    await load(src, keys, (k) => `v1 ${k}`);
    await load(dst, keys, (k) => (k.endsWith('5') ? `v0 ${k}` : `v1 ${k}`));
    await load(dst, ['cli:gone:1', 'cli:gone:2'], (k) => `v0 ${k}`);
    const run = memshift(['repair', '--from', from(), '--to', to(), '--no-checkpoint', '--rate', '100000']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /checked 1002 keys .*: 900 equal, 102 removed/);
    assert.match(run.stdout, /removed: 100 stale \(value or flags differ\), 2 absent on the old pool/);
    const json = memshift(['repair', '--from', from(), '--to', to(), '--no-checkpoint', '--json']);
    assert.equal(json.status, 0, json.stderr);
    const report = JSON.parse(json.stdout) as RepairReport;
    assert.equal(report.removed, 0);
    assert.equal(report.counts.equal, 900);
    assert.equal(report.complete, true);
  });

  it('exits 1 when a new server keeps no CAS and keys there differ', async () => {
    const noCas = await startMemcached({ memoryMb: 16, args: ['-C'] });
    try {
      const c = new PoolClients(ketamaPool([noCas.address]));
      await load(c, ['cli:1'], () => 'something else');
      await c.close();
      const run = memshift(['repair', '--from', from(), '--to', noCas.address, '--no-checkpoint', '--json']);
      assert.equal(run.status, 1, run.stderr);
      const report = JSON.parse(run.stdout) as RepairReport;
      assert.equal(report.counts.unguarded, 1);
      assert.equal(report.complete, false);
    } finally {
      await noCas.stop();
    }
  });

  it('gives one line for a usage mistake, a missing checkpoint and a server that is down', async () => {
    const usage = memshift(['repair', '--from', from(), '--to', to(), '--resume', '--no-checkpoint']);
    assert.equal(usage.status, 2);
    assert.equal(usage.stderr.trim(), 'memshift: --resume needs a checkpoint');
    const nothing = memshift([
      'repair',
      '--from',
      from(),
      '--to',
      to(),
      '--resume',
      '--checkpoint',
      join(dir, 'none'),
    ]);
    assert.notEqual(nothing.status, 0);
    assert.notEqual(nothing.status, 70);
    assert.equal(nothing.stderr.trim().split('\n').length, 1, nothing.stderr);
    assert.match(nothing.stderr, /no checkpoint to resume from; start again without --resume/);
    const down = memshift([
      'repair',
      '--from',
      from(),
      '--to',
      `127.0.0.1:${await freePort()}`,
      '--no-checkpoint',
    ]);
    assert.notEqual(down.status, 0);
    assert.notEqual(down.status, 70);
    assert.equal(down.stderr.trim().split('\n').length, 1, down.stderr);
    assert.doesNotMatch(down.stderr, /\n\s+at /);
  });

  it('shows its progress and counts on the dashboard and in /metrics (--web)', async () => {
    await src.flush();
    await dst.flush();
    const keys = Array.from({ length: 2000 }, (_, i) => `web:${i}`);
    await load(src, keys, (k) => `v1 ${k}`);
    await load(dst, keys, (k) => (k.endsWith('1') ? `v0 ${k}` : `v1 ${k}`));
    const running = start([
      'repair',
      '--from',
      from(),
      '--to',
      to(),
      '--rate',
      '1000',
      '--no-checkpoint',
      '--web',
      '127.0.0.1:0',
      '--json',
    ]);
    const url = await running.dashboardUrl();
    let total = 0;
    for (let i = 0; i < 100 && total === 0; i++) {
      const snap = (await (await fetch(`${url}snapshot.json`)).json()) as {
        progress?: Record<string, { total: number }>;
      };
      total = snap.progress?.['repair']?.total ?? 0;
      if (total === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(total, keys.length);
    const metrics = await (await fetch(`${url}metrics`)).text();
    assert.match(metrics, /^memshift_repair_keys_total\{series="removed-stale"\} \d+$/m);
    assert.match(metrics, /^memshift_repair_keys_total\{series="changed-since-read"\} 0$/m);
    assert.equal(await running.exited, 0, running.stderr());
    assert.equal((JSON.parse(running.stdout()) as RepairReport).counts.removedStale, 200);
  });

  it('stops on Ctrl-C with its checkpoint kept, and --resume finishes the repair', async () => {
    await src.flush();
    await dst.flush();
    const keys = Array.from({ length: 20_000 }, (_, i) => `int:${i}`);
    await load(src, keys, (k) => `v1 ${k}`);
    await load(dst, keys, (k) => (k.endsWith('3') ? `v0 ${k}` : `v1 ${k}`));
    const checkpoint = join(dir, 'cli.checkpoint');
    const args = ['repair', '--from', from(), '--to', to(), '--checkpoint', checkpoint, '--json'];
    const running = start([...args, '--rate', '4000']);
    const deadline = Date.now() + 20_000;
    // The checkpoint is written once both new servers were listed, before the first batch.
    while (!existsSync(checkpoint)) {
      assert.ok(Date.now() < deadline, `no checkpoint written; stderr: ${running.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    running.child.kill('SIGINT');
    assert.equal(await running.exited, 1);
    const first = JSON.parse(running.stdout()) as RepairReport;
    assert.equal(first.interrupted, true);
    assert.ok(first.done < keys.length, `interrupted after ${first.done} keys`);
    assert.equal(statSync(checkpoint).mode & 0o777, 0o600);
    const resumed = memshift([...args, '--resume']);
    assert.equal(resumed.status, 0, resumed.stderr);
    const second = JSON.parse(resumed.stdout) as RepairReport;
    assert.equal(first.counts.compared + second.counts.compared, keys.length);
    assert.equal(first.counts.removedStale + second.counts.removedStale, keys.length / 10);
    const result = await audit(src, dst, keys);
    assert.deepEqual(result.older, []);
    assert.equal(existsSync(checkpoint), false);
  });
});
