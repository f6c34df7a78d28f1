/**
 * copy under failure: a source or target stopped or killed mid-copy. The
 * copy gives up on a server after a bounded number of failed batches with
 * one clear line, its checkpoint keeps every key not copied, and --resume
 * tries those keys again until the copy is exact.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { runCopy, type CopyOptions, type CopyProgress } from '../src/jobs/copy.js';
import type { CheckpointState } from '../src/jobs/checkpoint.js';
import { runVerify } from '../src/jobs/verify.js';
import { MemcachedClient } from '../src/net/client.js';
import { parsePoolSpec, type Pool } from '../src/topology/pool.js';
import { start } from './support/cli.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

const KEYS = 16_000;

function pool(servers: MemcachedServer[]): Pool {
  return parsePoolSpec(servers.map((s) => s.address).join(','), 'ketama', { where: 'test' });
}

async function until(
  what: string,
  test: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function readState(file: string): Promise<CheckpointState> {
  return JSON.parse(await readFile(file, 'utf8')) as CheckpointState;
}

describe('copy when a server fails mid-copy (real memcached)', () => {
  const sources: MemcachedServer[] = [];
  const targets: MemcachedServer[] = [];
  let dir: string;

  before(async () => {
    for (let i = 0; i < 2; i++) sources.push(await startMemcached({ memoryMb: 64 }));
    for (let i = 0; i < 2; i++) targets.push(await startMemcached({ memoryMb: 64 }));
    dir = await mkdtemp(join(tmpdir(), 'memshift-copy-fail-'));
  });

  after(async () => {
    for (const s of [...sources, ...targets]) s.process.kill('SIGCONT');
    await Promise.all([...sources, ...targets].map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    for (const [n, s] of sources.entries()) {
      const c = new MemcachedClient(s.address);
      await c.flushAll();
      for (let i = n; i < KEYS; i += 2 * 500) {
        const batch: Promise<unknown>[] = [];
        for (let k = i; k < Math.min(KEYS, i + 2 * 500); k += 2) batch.push(c.set(`f:${k}`, `value ${k}`));
        await Promise.all(batch);
      }
      await c.close();
    }
    for (const t of targets) {
      const c = new MemcachedClient(t.address);
      await c.flushAll();
      await c.close();
    }
  });

  /** Restarts a killed server where it was (empty, as a restarted memcached is). */
  async function restart(list: MemcachedServer[], i: number): Promise<void> {
    const old = list[i]!;
    list[i] = await startMemcached({ memoryMb: 64, port: old.port });
  }

  async function exact(): Promise<void> {
    const check = await runVerify({ from: pool(sources), to: pool(targets), sample: Infinity });
    assert.equal(check.keys.source, KEYS);
    assert.equal(check.keys.present, KEYS, `missing ${check.keys.missing}`);
    assert.equal(check.values.different, 0);
  }

  /** Runs a copy that does `hit` to a server once `after` keys are done, and returns its report. */
  function copyWithFault(
    checkpoint: string,
    hit: () => void,
    extra: Partial<CopyOptions> = {},
  ): ReturnType<typeof runCopy> {
    let fired = false;
    return runCopy(
      {
        from: pool(sources),
        to: pool(targets),
        checkpoint,
        rate: 8_000,
        batchKeys: 200,
        connection: { requestTimeoutMs: 1000, connectTimeoutMs: 1000 },
        ...extra,
      },
      {
        progressEveryMs: 0,
        onProgress: (p: CopyProgress) => {
          if (!fired && p.phase === 'copying' && p.done >= 3_000) {
            fired = true;
            hit();
          }
        },
      },
    );
  }

  it('a target stopped (SIGSTOP) mid-copy: given up after 3 failed batches, then --resume completes it exactly', async () => {
    const checkpoint = join(dir, 'target-stop.checkpoint');
    const first = await copyWithFault(checkpoint, () => targets[1]!.process.kill('SIGSTOP'));
    assert.equal(first.interrupted, false);
    assert.ok(
      first.errors.some((e) => /copy stopped after 3 failed batches in a row/.test(e) && /--resume/.test(e)),
      first.errors.join('\n'),
    );
    assert.ok(first.skipped.failed > 0);
    const state = await readState(checkpoint);
    assert.ok(
      state.sources.some((s) => s.done < s.total),
      'the checkpoint did not move over failed batches',
    );
    targets[1]!.process.kill('SIGCONT');
    const second = await runCopy({ from: pool(sources), to: pool(targets), checkpoint, resume: true });
    assert.deepEqual(second.errors, []);
    assert.ok(second.sources.reduce((n, s) => n + s.retried, 0) > 0, 'failed keys were tried again');
    await assert.rejects(stat(checkpoint), /ENOENT/);
    await exact();
  });

  it('a source killed mid-copy: given up quickly; after a restart (empty) --resume retries its keys and finds them gone', async () => {
    const checkpoint = join(dir, 'source-kill.checkpoint');
    const first = await copyWithFault(checkpoint, () => sources[0]!.process.kill('SIGKILL'));
    assert.ok(first.errors.some((e) => e.includes(sources[0]!.address) && /failed batches in a row/.test(e)));
    assert.ok(first.sources[0]!.stopped !== undefined);
    assert.equal(first.sources[1]!.stopped, undefined);
    const state = await readState(checkpoint);
    assert.ok(state.sources[0]!.done < state.sources[0]!.total);
    assert.equal(state.sources[1]!.done, state.sources[1]!.total);
    await restart(sources, 0);
    const second = await runCopy({
      from: pool(sources),
      to: pool(targets),
      checkpoint,
      resume: true,
    });
    assert.deepEqual(second.errors, []);
    assert.equal(second.copied, 0);
    assert.equal(second.skipped.vanished, second.total);
    assert.ok(second.total > 0);
    await assert.rejects(stat(checkpoint), /ENOENT/);
  });

  it('a target killed mid-copy: given up; after a restart --resume copies every key of the failed batches', async () => {
    const checkpoint = join(dir, 'target-kill.checkpoint');
    const first = await copyWithFault(checkpoint, () => targets[0]!.process.kill('SIGKILL'));
    assert.ok(first.errors.some((e) => /failed batches in a row/.test(e)));
    const before = await readState(checkpoint);
    const left = before.sources.reduce(
      (n, s) => n + s.total - s.done - (s.ahead ?? []).reduce((m, [a, b]) => m + b - a, 0),
      0,
    );
    assert.ok(left > 0);
    await restart(targets, 0);
    const second = await runCopy({ from: pool(sources), to: pool(targets), checkpoint, resume: true });
    assert.deepEqual(second.errors, []);
    assert.equal(second.total, left);
    assert.equal(second.done, left);
    await assert.rejects(stat(checkpoint), /ENOENT/);
    // Every key not copied before the kill is on the new pool now; what the killed target held is lost with it.
    const check = await runVerify({ from: pool(sources), to: pool(targets), sample: 0 });
    assert.equal(check.servers.find((s) => s.address === targets[1]!.address)?.coverage, 1);
  });

  it('the command: a source stopped (SIGSTOP) mid-copy ends it with status 1 and one line; --resume ends with 0 and the copy exact', async () => {
    const checkpoint = join(dir, 'cli.checkpoint');
    const from = sources.map((s) => s.address).join(',');
    const to = targets.map((s) => s.address).join(',');
    const args = ['copy', '--from', from, '--to', to, '--checkpoint', checkpoint, '--no-progress'];
    const run = start([...args, '--rate', '4000']);
    await until('a checkpoint with progress', async () => {
      try {
        return (await readState(checkpoint)).sources.some((s) => s.done > 0);
      } catch {
        return false;
      }
    });
    sources[1]!.process.kill('SIGSTOP');
    const status = await run.exited;
    assert.equal(status, 1, run.stderr());
    const lines = run
      .stderr()
      .split('\n')
      .filter((l) => /copy stopped after/.test(l));
    assert.equal(lines.length, 1, run.stderr());
    assert.match(lines[0]!, new RegExp(`^memshift: warning: ${sources[1]!.address.replace(/\./g, '\\.')}: `));
    assert.doesNotMatch(run.stderr(), /\n\s+at /, 'no stack trace');
    sources[1]!.process.kill('SIGCONT');
    const resumed = start([...args, '--resume']);
    assert.equal(await resumed.exited, 0, resumed.stderr());
    assert.match(resumed.stdout(), /keys of failed batches tried again/);
    await assert.rejects(stat(checkpoint), /ENOENT/);
    await exact();
  });
});
