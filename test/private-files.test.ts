/**
 * Files memshift writes (src/jobs/private-file.ts): the copy's checkpoint and
 * keys files, --log files and the demo's report are owner-only (0600), a file
 * written whole never goes through a symbolic link planted at its final or
 * its old fixed temporary name, a log refuses a symbolic link, and a failed
 * write leaves no temporary file behind.
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import {
  readCheckpoint,
  readKeys,
  writeCheckpoint,
  writeKeys,
  keysFileOf,
  type CheckpointState,
} from '../src/jobs/checkpoint.js';
import { runCopy, type CopyProgress } from '../src/jobs/copy.js';
import { KeyList } from '../src/jobs/enumerate.js';
import { openPrivateLog, writePrivateFile, writePrivateFileWith } from '../src/jobs/private-file.js';
import { MemcachedClient } from '../src/net/client.js';
import { MemshiftError } from '../src/protocol/errors.js';
import { parsePoolSpec } from '../src/topology/pool.js';
import { registerProxy } from '../src/ui/commands/proxy.js';
import { memshift } from './support/cli.js';
import { freePort, startMemcached, type MemcachedServer } from './support/memcached.js';

const VICTIM_TEXT = 'the victim file, which memshift must never write\n';

async function mode(file: string): Promise<number> {
  return (await stat(file)).mode & 0o777;
}

/** Names in `dir` that look like a temporary file of ours. */
async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.endsWith('.tmp'));
}

function state(done: number): CheckpointState {
  return {
    version: 1,
    from: ['127.0.0.1:1'],
    to: ['127.0.0.1:2'],
    order: 'hottest',
    startedAt: new Date(0).toISOString(),
    sources: [{ address: '127.0.0.1:1', total: 10, done }],
  };
}

describe('files memshift writes', () => {
  let dir: string;
  let victim: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memshift-files-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** A fresh directory with a victim file in it, as an attacker would aim at. */
  async function fresh(name: string): Promise<string> {
    const d = join(dir, name);
    await mkdir(d);
    victim = join(d, 'victim');
    await writeFile(victim, VICTIM_TEXT);
    return d;
  }

  it('writes the checkpoint 0600, past a symlink at the old fixed .tmp name and at the final name', async () => {
    const d = await fresh('checkpoint');
    const file = join(d, 'copy.checkpoint');
    await symlink(victim, `${file}.tmp`);
    await writeCheckpoint(file, state(3));
    assert.equal(await mode(file), 0o600);
    assert.equal((await readCheckpoint(file))?.sources[0]?.done, 3);
    assert.equal(await readFile(victim, 'utf8'), VICTIM_TEXT);

    // A link at the final name is replaced by the file, not written through.
    await rm(file);
    await symlink(victim, file);
    await writeCheckpoint(file, state(4));
    assert.ok((await lstat(file)).isFile());
    assert.equal(await mode(file), 0o600);
    assert.equal((await readCheckpoint(file))?.sources[0]?.done, 4);
    assert.equal(await readFile(victim, 'utf8'), VICTIM_TEXT);
    // Only the planted link has the old temporary name; nothing of ours is left.
    assert.deepEqual(await leftovers(d), ['copy.checkpoint.tmp']);
    assert.ok((await lstat(`${file}.tmp`)).isSymbolicLink());
  });

  it('writes a keys file 0600 and whole, never through a symlink', async () => {
    const d = await fresh('keys');
    const list = new KeyList({ expected: 30_000 });
    // Enough keys for several write chunks, every key length from 1 to 250.
    for (let i = 0; i < 30_000; i++) list.push(Buffer.alloc(1 + (i % 250), i % 251), 0, false);
    const order = list.hottestFirst();
    const file = keysFileOf(join(d, 'copy.checkpoint'), 0);
    await symlink(victim, file);
    await writeKeys(file, list, order);
    assert.ok((await lstat(file)).isFile());
    assert.equal(await mode(file), 0o600);
    assert.equal(await readFile(victim, 'utf8'), VICTIM_TEXT);
    const back = await readKeys(file, list.length);
    for (let n = 0; n < order.length; n++) assert.deepEqual(back.key(n), list.key(order[n]!));
    assert.deepEqual(await leftovers(d), []);
  });

  it('leaves no temporary file when a write fails, and the old file as it was', async () => {
    const d = await fresh('failures');
    // The final name is a directory: the rename fails after the content was written.
    const blocked = join(d, 'blocked.checkpoint');
    await mkdir(blocked);
    await assert.rejects(writeCheckpoint(blocked, state(1)), /EISDIR|ENOTDIR|EEXIST|ENOTEMPTY/);
    // The content cannot be produced: the error is the producer's, the old file stays.
    const file = join(d, 'report.json');
    await writePrivateFile(file, 'old\n');
    await assert.rejects(
      writePrivateFileWith(file, async (out) => {
        await out.write('half of the new');
        throw new Error('producer failed');
      }),
      /producer failed/,
    );
    assert.equal(await readFile(file, 'utf8'), 'old\n');
    assert.deepEqual(await leftovers(d), []);
    assert.deepEqual((await readdir(d)).sort(), ['blocked.checkpoint', 'report.json', 'victim']);
  });

  it('opens a log 0600 for appending and refuses a symlink with one clear error', async () => {
    const d = await fresh('log');
    const file = join(d, 'memshift.log');
    const log = openPrivateLog(file);
    await new Promise<void>((resolve) => log.end('one\n', resolve));
    const again = openPrivateLog(file);
    await new Promise<void>((resolve) => again.end('two\n', resolve));
    assert.equal(await readFile(file, 'utf8'), 'one\ntwo\n', 'appended, not replaced');
    assert.equal(await mode(file), 0o600);
    const link = join(d, 'linked.log');
    await symlink(victim, link);
    assert.throws(
      () => openPrivateLog(link),
      (err: unknown) =>
        err instanceof MemshiftError && /linked\.log: it is a symbolic link/.test(err.message),
    );
    assert.equal(await readFile(victim, 'utf8'), VICTIM_TEXT);
  });

  it('mirror --log refuses a symlink before it starts', async () => {
    const d = await fresh('mirror-log');
    const link = join(d, 'mirror.log');
    await symlink(victim, link);
    const run = memshift([
      'mirror',
      '--pcap',
      join(d, 'absent.pcap'),
      '--port',
      '11211',
      '--map',
      '127.0.0.1:1',
      '--log',
      link,
    ]);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /^memshift: cannot open log .*mirror\.log: it is a symbolic link/);
    assert.equal(await readFile(victim, 'utf8'), VICTIM_TEXT);
  });
});

describe('files memshift writes, from its commands (real memcached)', { timeout: 180_000 }, () => {
  const servers: MemcachedServer[] = [];
  let dir: string;

  before(async () => {
    for (let i = 0; i < 2; i++) servers.push(await startMemcached());
    dir = await mkdtemp(join(tmpdir(), 'memshift-files-'));
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  it('an interrupted copy leaves its checkpoint and keys file 0600 and ignores a planted .tmp link', async () => {
    const [source, target] = servers as [MemcachedServer, MemcachedServer];
    const client = new MemcachedClient(source.address);
    for (let i = 0; i < 3000; i += 500) {
      const writes: Promise<unknown>[] = [];
      for (let j = i; j < i + 500; j++) writes.push(client.set(`files:${j}`, `value-${j}`));
      await Promise.all(writes);
    }
    await client.close();
    const victim = join(dir, 'copy-victim');
    await writeFile(victim, VICTIM_TEXT);
    const checkpoint = join(dir, 'copy.checkpoint');
    await symlink(victim, `${checkpoint}.tmp`);
    const abort = new AbortController();
    const report = await runCopy(
      {
        from: parsePoolSpec(source.address, 'ketama', { where: 'test' }),
        to: parsePoolSpec(target.address, 'ketama', { where: 'test' }),
        checkpoint,
        signal: abort.signal,
        rate: 1000,
      },
      {
        progressEveryMs: 0,
        onProgress: (p: CopyProgress) => {
          if (p.phase === 'copying' && p.done >= 100) abort.abort();
        },
      },
    );
    assert.equal(report.interrupted, true);
    assert.equal(await mode(checkpoint), 0o600);
    assert.equal(await mode(keysFileOf(checkpoint, 0)), 0o600);
    assert.ok(((await readCheckpoint(checkpoint))?.sources[0]?.done ?? 0) > 0);
    assert.equal(await readFile(victim, 'utf8'), VICTIM_TEXT);
    assert.deepEqual(await leftovers(dir), ['copy.checkpoint.tmp']);
  });

  it('proxy --log writes a 0600 log, and refuses a symlink before it listens', async () => {
    const [old, fresh] = servers as [MemcachedServer, MemcachedServer];
    const log = join(dir, 'proxy.log');
    let text = '';
    const program = new Command('memshift').exitOverride();
    registerProxy(program, { write: (t: string) => (text += t), exitCode: 0 });
    const args = ['proxy', '--from', old.address, '--to', fresh.address, '--duration', '0.5', '--json'];
    await program.parseAsync([...args, '--listen', `127.0.0.1:${await freePort()}`, '--log', log], {
      from: 'user',
    });
    assert.ok(text.length > 0, 'a summary');
    assert.equal(await mode(log), 0o600);
    const events = (await readFile(log, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { event: string }).event);
    assert.equal(events[0], 'start');
    assert.equal(events[events.length - 1], 'summary');

    const victim = join(dir, 'proxy-victim');
    await writeFile(victim, VICTIM_TEXT);
    const link = join(dir, 'linked-proxy.log');
    await symlink(victim, link);
    const refused = new Command('memshift').exitOverride();
    registerProxy(refused, { write: () => undefined, exitCode: 0 });
    await assert.rejects(
      refused.parseAsync([...args, '--listen', `127.0.0.1:${await freePort()}`, '--log', link], {
        from: 'user',
      }),
      /cannot open log .*linked-proxy\.log: it is a symbolic link/,
    );
    assert.equal(await readFile(victim, 'utf8'), VICTIM_TEXT);
  });

  it('demo writes its report folder 0700 and its files 0600, replacing a planted link', async () => {
    const out = join(dir, 'reports', 'demo');
    const victim = join(dir, 'demo-victim');
    await writeFile(victim, VICTIM_TEXT);
    // The folder does not exist yet; the run creates it. A second run finds a link planted in it.
    const args = ['demo', '--strategies', 'big-bang', '--warmup', '1', '--window', '1', '--after', '1'];
    const small = [...args, '--keys', '200', '--rate', '100', '--old', '1', '--new', '1', '--json'];
    const first = memshift([...small, '--out', out], { timeoutMs: 120_000 });
    assert.equal(first.status, 0, first.stderr);
    assert.equal(await mode(out), 0o700);
    for (const name of ['report.txt', 'report.json', 'hit-ratio.svg']) {
      assert.equal(await mode(join(out, name)), 0o600, name);
    }
    await rm(join(out, 'report.json'));
    await symlink(victim, join(out, 'report.json'));
    const second = memshift([...small, '--out', out], { timeoutMs: 120_000 });
    assert.equal(second.status, 0, second.stderr);
    assert.ok((await lstat(join(out, 'report.json'))).isFile());
    assert.equal(await mode(join(out, 'report.json')), 0o600);
    assert.equal(await readFile(victim, 'utf8'), VICTIM_TEXT);
    assert.deepEqual(await leftovers(out), []);
  });
});
