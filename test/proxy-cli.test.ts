/**
 * `memshift proxy` as a command (registerProxy, in process) and the shadow
 * mode's --backfill: keys the old pool held before the proxy started reach
 * the new pool, and a key mutated through the proxy meanwhile keeps its new value.
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import { Proxy } from '../src/jobs/proxy.js';
import { MemcachedClient } from '../src/net/client.js';
import { parsePoolSpec } from '../src/topology/pool.js';
import { registerProxy } from '../src/ui/commands/proxy.js';
import { freePort, startMemcached, type MemcachedServer } from './support/memcached.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const f of cleanups.reverse()) await f().catch(() => undefined);
});

async function server(): Promise<MemcachedServer> {
  const s = await startMemcached();
  cleanups.push(() => s.stop());
  return s;
}

function client(address: string): MemcachedClient {
  const c = new MemcachedClient(address, { requestTimeoutMs: 2000 });
  cleanups.push(async () => c.destroy());
  return c;
}

describe('memshift proxy command and backfill', { timeout: 120_000 }, () => {
  it('runs for --duration, serves clients, shadows their writes and prints a JSON summary', async () => {
    const old = await server();
    const fresh = await server();
    const port = await freePort();
    let text = '';
    const out = { write: (t: string) => (text += t), exitCode: 0 };
    const program = new Command('memshift').exitOverride();
    registerProxy(program, out);
    const running = program.parseAsync(
      [
        'proxy',
        '--from',
        old.address,
        '--to',
        fresh.address,
        '--listen',
        `127.0.0.1:${port}`,
        '--duration',
        '2',
        '--json',
      ],
      { from: 'user' },
    );
    // The listener is up within the duration; a bounded number of tries.
    const c = client(`127.0.0.1:${port}`);
    let stored = '';
    for (let i = 0; i < 20 && stored !== 'STORED'; i++) {
      stored = await c.set('via-cli', 'yes').catch(() => '');
      if (stored !== 'STORED') await sleep(50);
    }
    assert.equal(stored, 'STORED');
    assert.equal((await c.get('via-cli'))?.value.toString(), 'yes');
    await running;
    const summary = JSON.parse(text) as { mode: string; proxy: { requests: number; primaryErrors: number } };
    assert.equal(summary.mode, 'shadow');
    assert.ok(summary.proxy.requests >= 2);
    assert.equal(summary.proxy.primaryErrors, 0);
    assert.equal(out.exitCode, 0);
    assert.equal((await client(fresh.address).get('via-cli'))?.value.toString(), 'yes');
  });

  it('rejects an unknown mode with a usage error', async () => {
    const program = new Command('memshift').exitOverride();
    registerProxy(program, { write: () => undefined, exitCode: 0 });
    await assert.rejects(
      program.parseAsync(['proxy', '--from', '127.0.0.1:1', '--to', '127.0.0.1:2', '--mode', 'mirror'], {
        from: 'user',
      }),
      /--mode must be shadow, warm or dual/,
    );
  });

  it('--backfill copies what the old pool held before the proxy started', async () => {
    const old = await server();
    const fresh = await server();
    const before = client(old.address);
    for (let i = 0; i < 200; i++) await before.set(`pre:${i}`, `old-${i}`, { exptime: 600 });
    const p = new Proxy({
      mode: 'shadow',
      primary: parsePoolSpec(old.address, 'ketama'),
      secondary: parsePoolSpec(fresh.address, 'ketama'),
      backfill: {},
    });
    const { port } = await p.start();
    cleanups.push(async () => void (await p.stop(500, 500)));
    const through = client(`127.0.0.1:${port}`);
    await through.set('pre:7', 'changed');
    await through.delete('pre:8');
    for (let i = 0; i < 200 && p.status().backfill[0]?.report === undefined; i++) await sleep(50);
    const state = p.status().backfill[0];
    assert.equal(state?.error, undefined);
    assert.ok(state?.report, 'backfill finished');
    assert.ok(await p.drain(5000));
    const after = client(fresh.address);
    assert.equal((await after.get('pre:1'))?.value.toString(), 'old-1');
    assert.equal((await after.get('pre:199'))?.value.toString(), 'old-199');
    assert.equal((await after.get('pre:7'))?.value.toString(), 'changed');
    assert.equal(await after.get('pre:8'), undefined);
  });

  /** Runs `memshift proxy` in process for `seconds` with `extra` flags; sets and reads a key through it. */
  async function runFor(
    extra: string[],
    seconds = 2,
  ): Promise<{ summary: { proxy: { primaryErrors: number } }; stderr: string }> {
    const old = await server();
    const fresh = await server();
    const port = await freePort();
    let text = '';
    const out = { write: (t: string) => (text += t), exitCode: 0 };
    const program = new Command('memshift').exitOverride();
    registerProxy(program, out);
    let stderr = '';
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array): boolean => {
      stderr += chunk.toString();
      return true;
    }) as typeof process.stderr.write;
    try {
      const running = program.parseAsync(
        [
          'proxy',
          '--from',
          old.address,
          '--to',
          fresh.address,
          '--listen',
          `127.0.0.1:${port}`,
          '--duration',
          String(seconds),
          '--json',
          ...extra,
        ],
        { from: 'user' },
      );
      const c = client(`127.0.0.1:${port}`);
      let stored = '';
      for (let i = 0; i < 20 && stored !== 'STORED'; i++) {
        stored = await c.set('k', 'v').catch(() => '');
        if (stored !== 'STORED') await sleep(50);
      }
      assert.equal(stored, 'STORED');
      // One warning per flush_all would let a client fill a disk: they are rate-limited.
      for (let i = 0; i < 50; i++) await c.flushAll();
      assert.equal(await c.get('k'), undefined);
      await running;
    } finally {
      process.stderr.write = write;
    }
    return { summary: JSON.parse(text) as { proxy: { primaryErrors: number } }, stderr };
  }

  for (const target of ['/dev/full', tmpdir()]) {
    it(`a --log that cannot be written (${target}) is one warning; the proxy keeps serving`, async () => {
      const { summary, stderr } = await runFor(['--log', target]);
      assert.equal(summary.proxy.primaryErrors, 0);
      assert.equal(stderr.match(/logging stopped, still running/g)?.length, 1, stderr);
    });
  }

  it('warnings are rate-limited: 50 flush_all make a handful of lines, then one count', async () => {
    const { stderr } = await runFor([]);
    const lines = stderr.split('\n').filter((l) => l.includes('flush_all'));
    assert.ok(lines.length >= 1 && lines.length <= 6, stderr);
    assert.match(stderr, /\d+ more like: flush_all/);
  });

  it('--flush all-targets: a client flush_all reaches the new pool in shadow mode', async () => {
    const old = await server();
    const fresh = await server();
    const port = await freePort();
    const program = new Command('memshift').exitOverride();
    registerProxy(program, { write: () => undefined, exitCode: 0 });
    const running = program.parseAsync(
      [
        'proxy',
        '--from',
        old.address,
        '--to',
        fresh.address,
        '--listen',
        `127.0.0.1:${port}`,
        '--duration',
        '2',
        '--flush',
        'all-targets',
      ],
      { from: 'user' },
    );
    const through = client(`127.0.0.1:${port}`);
    let stored = '';
    for (let i = 0; i < 20 && stored !== 'STORED'; i++) {
      stored = await through.set('f', 'v').catch(() => '');
      if (stored !== 'STORED') await sleep(50);
    }
    const after = client(fresh.address);
    for (let i = 0; i < 40 && (await after.get('f')) === undefined; i++) await sleep(25);
    assert.equal((await after.get('f'))?.value.toString(), 'v');
    await through.flushAll();
    for (let i = 0; i < 40 && (await after.get('f')) !== undefined; i++) await sleep(25);
    assert.equal(await after.get('f'), undefined);
    await running;
  });

  it('--listen beyond loopback warns that the protocol has no authentication', async () => {
    const program = new Command('memshift').exitOverride();
    const old = await server();
    let captured = '';
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array): boolean => {
      captured += chunk.toString();
      return true;
    }) as typeof process.stderr.write;
    try {
      registerProxy(program, { write: () => undefined, exitCode: 0 });
      await program.parseAsync(
        [
          'proxy',
          '--from',
          old.address,
          '--to',
          old.address,
          '--listen',
          `0.0.0.0:${await freePort()}`,
          '--duration',
          '0.2',
        ],
        { from: 'user' },
      );
    } finally {
      process.stderr.write = write;
    }
    assert.match(captured, /no authentication/);
  });
});
