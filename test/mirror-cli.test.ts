import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MemcachedClient } from '../src/net/client.js';
import { start } from './support/cli.js';
import { startMemcached } from './support/memcached.js';

const BIN = fileURLToPath(new URL('../../bin/memshift.js', import.meta.url));

describe('memshift mirror on the command line', () => {
  it('stops on SIGINT, drains, and prints its summary', async () => {
    const source = await startMemcached();
    const target = await startMemcached();
    try {
      const child = spawn(
        process.execPath,
        [BIN, 'mirror', '-i', 'lo', '--port', String(source.port), '--to', target.address, '--json'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      const client = new MemcachedClient(source.address);
      const onTarget = new MemcachedClient(target.address);
      // Wait (bounded) until capture runs: a key set now shows up on the target.
      let seen = false;
      for (let i = 0; i < 100 && !seen; i++) {
        await client.set(`sigint:${i}`, 'v');
        await new Promise((resolve) => setTimeout(resolve, 100));
        seen =
          (await new MemcachedClient(target.address).get(`sigint:${i}`).catch(() => undefined)) !== undefined;
      }
      await client.close();
      onTarget.destroy();
      child.kill('SIGINT');
      assert.equal(await exited, 0, stderr);
      const summary = JSON.parse(stdout) as { drained: boolean; routes: { replay: { applied: number } }[] };
      assert.equal(summary.drained, true);
      assert.ok(summary.routes[0]!.replay.applied > 0);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('serves a dashboard and Prometheus metrics whose numbers are the mirror counters', async () => {
    const source = await startMemcached();
    const target = await startMemcached();
    try {
      const mirror = start([
        'mirror',
        '-i',
        'lo',
        '--port',
        String(source.port),
        '--to',
        target.address,
        '--web',
        '127.0.0.1:0',
        '--json',
      ]);
      const url = await mirror.dashboardUrl();
      const client = new MemcachedClient(source.address);
      for (let i = 0; i < 200; i++) await client.set(`web:${i}`, 'v');
      await client.close();
      type Snap = { counters: Record<string, number> };
      let snap: Snap = { counters: {} };
      for (let i = 0; i < 100 && (snap.counters['operations/applied'] ?? 0) < 200; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        snap = (await (await fetch(`${url}snapshot.json`)).json()) as Snap;
      }
      assert.equal(snap.counters['operations/applied'], 200);
      const metrics = await (await fetch(`${url}metrics`)).text();
      assert.match(metrics, /^# TYPE memshift_mirror_operations_total counter$/m);
      assert.match(metrics, /^memshift_mirror_operations_total\{series="applied"\} 200$/m);
      assert.match(await (await fetch(url)).text(), /memshift mirror/);
      mirror.child.kill('SIGINT');
      assert.equal(await mirror.exited, 0, mirror.stderr());
      const summary = JSON.parse(mirror.stdout()) as { routes: { replay: { applied: number } }[] };
      assert.equal(summary.routes[0]!.replay.applied, 200);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('says at once that capture runs and with which filter; warns (rate-limited) on stderr and in --log', async () => {
    const source = await startMemcached();
    const down = await startMemcached();
    const downAddress = down.address;
    await down.stop(); // a target that refuses connections
    const log = join(mkdtempSync(join(tmpdir(), 'memshift-')), 'mirror.log');
    try {
      const mirror = start([
        'mirror',
        '-i',
        'lo',
        '--port',
        String(source.port),
        '--to',
        downAddress,
        '--log',
        log,
      ]);
      const deadline = Date.now() + 10_000;
      while (!/capturing on lo/.test(mirror.stderr()) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // Well before the first status line (10 s without a terminal).
      assert.match(mirror.stderr(), /^memshift mirror: capturing on lo \(filter: .*port \d+.*\); \d+ -> /m);
      assert.match(mirror.stderr(), /; memshift-capture, ring blocks handed over within 5 ms\)/);
      assert.match(mirror.stderr(), /values up to 2 MiB|values up to 1 MiB/);
      const client = new MemcachedClient(source.address);
      for (let i = 0; i < 50; i++) await client.set(`warn:${i}`, 'v');
      await client.close();
      while (
        !/warning: target .* not taking writes/.test(mirror.stderr()) &&
        Date.now() < deadline + 10_000
      ) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      mirror.child.kill('SIGINT');
      await mirror.exited;
      const warnings = mirror
        .stderr()
        .split('\n')
        .filter((line) => /not taking writes/.test(line));
      assert.equal(warnings.length, 1, mirror.stderr());
      const records = readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { event: string });
      assert.ok(records.some((r) => r.event === 'capturing'));
      assert.ok(records.some((r) => r.event === 'warning'));
    } finally {
      await source.stop();
    }
  });

  it('--immediate: capture sized from the MTU, reported at start, and mirroring', async () => {
    const source = await startMemcached();
    const target = await startMemcached();
    const mirror = start([
      'mirror',
      '-i',
      'lo',
      '--immediate',
      '--port',
      String(source.port),
      '--to',
      target.address,
    ]);
    try {
      const deadline = Date.now() + 10_000;
      while (!/capturing on lo/.test(mirror.stderr()) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // lo's MTU is 65536: the snap length covers it and the link header.
      assert.match(
        mirror.stderr(),
        /immediate delivery, snap 656\d\d B \(MTU 65536\), ring \d+ MiB \(~\d+ packets, ~\d+ ms at 80000 packets\/s\)/,
      );
      const client = new MemcachedClient(source.address);
      await client.set('immediate:1', 'now');
      await client.close();
      const onTarget = new MemcachedClient(target.address);
      let got: string | undefined;
      for (let i = 0; i < 100 && got === undefined; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        got = (await onTarget.get('immediate:1'))?.value.toString();
      }
      onTarget.destroy();
      assert.equal(got, 'now');
      mirror.child.kill('SIGINT');
      assert.equal(await mirror.exited, 0, mirror.stderr());
    } finally {
      mirror.child.kill('SIGKILL');
      await source.stop();
      await target.stop();
    }
  });

  it('says what to install when tcpdump is missing, in one line', () => {
    const run = spawnSync(
      process.execPath,
      [BIN, 'mirror', '--port', '11211', '--to', '127.0.0.1:11311', '--capture-program', 'tcpdump'],
      { encoding: 'utf8', timeout: 20_000, env: { ...process.env, PATH: '/nonexistent' } },
    );
    assert.equal(run.status, 2);
    assert.equal(run.stderr.trim().split('\n').length, 1);
    assert.match(run.stderr, /^memshift: .*apt-get install tcpdump/);
  });

  it('refuses an unknown capture program with one line', () => {
    const run = spawnSync(
      process.execPath,
      [BIN, 'mirror', '--port', '11211', '--to', '127.0.0.1:11311', '--capture-program', 'pcapd'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.equal(run.status, 2);
    assert.match(run.stderr.trim(), /^memshift: --capture-program: give helper or tcpdump, not pcapd$/);
  });

  it('refuses bad routes with one line', () => {
    const run = spawnSync(process.execPath, [BIN, 'mirror', '--route', '11211'], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(run.status, 2);
    assert.match(run.stderr.trim(), /^memshift: --route must be PORT=POOL, got "11211"$/);
  });
});
