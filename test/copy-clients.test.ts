/**
 * copy, checked through the clients an application really uses: items
 * written by pylibmc (libmemcached's weighted ketama, binary protocol) and by
 * Ruby Dalli into a 2-server pool, copied into a 3-server pool, then read
 * back by the same client configured with the new pool. Every key must come
 * back with its value and flags (the client decodes both), or be one the
 * copy counted as skipped.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCopy } from '../src/jobs/copy.js';
import { MemcachedClient } from '../src/net/client.js';
import { parsePoolSpec, type Pool } from '../src/topology/pool.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

const CLIENTS = fileURLToPath(new URL('../../test/clients/', import.meta.url));

interface Item {
  key: string; // base64
  kind: 'bytes' | 'text' | 'int' | 'dict';
  value: string | number;
  repeat?: number;
}

interface SetResult {
  stored: number;
  failed: string[];
}
interface GetResult {
  ok: number;
  wrong: string[];
  missing: string[];
}

function drive<T>(command: string, script: string, job: object): T {
  const run = spawnSync(command, [CLIENTS + script], {
    input: JSON.stringify(job),
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(run.status, 0, `${script}: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

const b64 = (key: string | Buffer): string => Buffer.from(key).toString('base64');

/** Items every client can store: text, integers, structures, binary values up to 1.5 MB, long and UTF-8 keys. */
function commonItems(prefix: string): Item[] {
  const items: Item[] = [];
  for (let i = 0; i < 300; i++)
    items.push({ key: b64(`${prefix}:text:${i}`), kind: 'text', value: `value ${i}` });
  for (let i = 0; i < 50; i++)
    items.push({ key: b64(`${prefix}:int:${i}`), kind: 'int', value: i * 1000 + 7 });
  for (let i = 0; i < 50; i++) items.push({ key: b64(`${prefix}:dict:${i}`), kind: 'dict', value: `d${i}` });
  for (let i = 0; i < 20; i++) {
    const value = Buffer.from(Array.from({ length: 97 }, (_, n) => (n * 31 + i) & 255));
    items.push({
      key: b64(`${prefix}:bytes:${i}`),
      kind: 'bytes',
      value: value.toString('base64'),
      repeat: i * 50 + 1,
    });
  }
  // 1.5 MB, over memcached's default 1 MiB item and within -I 2m.
  for (let i = 0; i < 3; i++)
    items.push({ key: b64(`${prefix}:large:${i}`), kind: 'text', value: `L${i}abcdefghi`, repeat: 150_000 });
  items.push({ key: b64(`${prefix}:`.padEnd(250, 'x')), kind: 'text', value: '250-byte key' });
  for (const name of ['clé', 'ünïcödé', '日本語', 'emoji😀', 'ελληνικά'])
    items.push({ key: b64(`${prefix}:${name}`), kind: 'text', value: `utf-8 ${name}` });
  return items;
}

function serversOf(pool: MemcachedServer[]): { host: string; port: number; weight: number }[] {
  return pool.map((s) => ({ host: s.host, port: s.port, weight: 1 }));
}

describe('copy read back by real clients (pylibmc, Dalli; real memcached -I 2m)', () => {
  const old: MemcachedServer[] = [];
  const fresh: MemcachedServer[] = [];

  before(async () => {
    for (let i = 0; i < 2; i++) old.push(await startMemcached({ memoryMb: 64, args: ['-I', '2m'] }));
    for (let i = 0; i < 3; i++) fresh.push(await startMemcached({ memoryMb: 64, args: ['-I', '2m'] }));
  });

  after(async () => {
    await Promise.all([...old, ...fresh].map((s) => s.stop()));
  });

  const pool = (servers: MemcachedServer[], hash: string): Pool =>
    parsePoolSpec(servers.map((s) => s.address).join(','), hash, { where: 'test' });

  it('pylibmc (ketama_weighted, binary protocol): every copied key reads back equal from the new pool; keys meta cannot name are counted', async () => {
    const behaviors = { ketama_weighted: true };
    const items = commonItems('py');
    // The binary protocol lets keys hold spaces: within the 186 bytes base64 can carry, and beyond.
    items.push({ key: b64('py:has space'), kind: 'text', value: 'space' });
    items.push({ key: b64(`py:space ${'s'.repeat(170)}`), kind: 'text', value: 'long space key, 180 bytes' });
    const unsupported = [b64(`py:space ${'u'.repeat(200)}`)];
    for (const key of unsupported) items.push({ key, kind: 'text', value: 'no meta command names this' });

    const wrote = drive<SetResult>('/usr/bin/python3', 'kv.py', {
      client: 'pylibmc',
      binary: true,
      behaviors,
      servers: serversOf(old),
      op: 'set',
      items,
    });
    assert.deepEqual(wrote.failed, []);
    assert.equal(wrote.stored, items.length);

    const report = await runCopy({
      from: pool(old, 'libmemcached-ketama'),
      to: pool(fresh, 'libmemcached-ketama'),
    });
    assert.deepEqual(report.errors, []);
    assert.equal(report.copied, items.length - unsupported.length);
    assert.equal(report.skipped['unsupported-key'], unsupported.length);

    const read = drive<GetResult>('/usr/bin/python3', 'kv.py', {
      client: 'pylibmc',
      binary: true,
      behaviors,
      servers: serversOf(fresh),
      op: 'get',
      items,
    });
    assert.deepEqual(read.wrong, []);
    assert.deepEqual(read.missing, unsupported);
    assert.equal(read.ok, items.length - unsupported.length);
  });

  it('Ruby Dalli: every copied key reads back equal from the new pool', async () => {
    for (const s of [...old, ...fresh]) {
      const c = new MemcachedClient(s.address);
      await c.flushAll();
      await c.close();
    }
    const items = commonItems('rb');
    const wrote = drive<SetResult>('ruby', 'kv.rb', { servers: serversOf(old), op: 'set', items });
    assert.deepEqual(wrote.failed, []);
    const report = await runCopy({ from: pool(old, 'dalli'), to: pool(fresh, 'dalli') });
    assert.deepEqual(report.errors, []);
    assert.equal(report.copied, items.length);
    const read = drive<GetResult>('ruby', 'kv.rb', { servers: serversOf(fresh), op: 'get', items });
    assert.deepEqual(read.wrong, []);
    assert.deepEqual(read.missing, []);
    assert.equal(read.ok, items.length);
  });
});
