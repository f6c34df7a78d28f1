/** Pools from inline lists and YAML/JSON files, and the one-line errors for bad ones. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ConfigError, loadPools, parseMemory, parsePoolSpec, resolvePool } from '../src/topology/index.js';

const dir = mkdtempSync(join(tmpdir(), 'memshift-pools-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function configError(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.code, 'MEMSHIFT_ERR_CONFIG');
    assert.ok(!err.message.includes('\n'), 'one line');
    for (const p of parts) {
      if (typeof p === 'string') assert.ok(err.message.includes(p), `${err.message} lacks ${p}`);
      else assert.match(err.message, p);
    }
    return true;
  });
}

test('an inline list keeps order, ports, weights and IPv6 brackets', () => {
  const pool = parsePoolSpec('10.0.0.5:11211,10.0.0.6:11212:3,[::1]:11213', 'ketama');
  assert.equal(pool.hash, 'libmemcached-ketama');
  assert.deepEqual(
    pool.servers.map((s) => [s.host, s.port, s.weight, s.address]),
    [
      ['10.0.0.5', 11211, 1, '10.0.0.5:11211'],
      ['10.0.0.6', 11212, 3, '10.0.0.6:11212'],
      ['::1', 11213, 1, '[::1]:11213'],
    ],
  );
  assert.equal(parsePoolSpec('cache1', 'dalli').servers[0]!.port, 11211);
  const tw = parsePoolSpec('a:1,b:2', 'twemproxy-ketama:md5');
  assert.equal(tw.hash, 'twemproxy-ketama');
  assert.equal(tw.hashFunction, 'md5');
  assert.equal(parsePoolSpec('a:1', 'twemproxy-modula').hashFunction, 'fnv1a_64');
});

test('bad inline lists and names fail with one line naming the option, the field and what is allowed', () => {
  configError(() => parsePoolSpec('a:1,,b:2', 'ketama'), '--to', 'host:port');
  configError(() => parsePoolSpec('a:99999', 'ketama'), '--to', 'server 1', '1-65535');
  configError(() => parsePoolSpec('a:1:0', 'ketama'), 'weight', '1-65535');
  configError(() => parsePoolSpec('a:1,a:1', 'ketama'), 'listed twice');
  configError(
    () => parsePoolSpec('a:1', 'ketamaa'),
    '--to',
    'hash',
    "unknown distribution 'ketamaa'",
    'dalli',
  );
  configError(() => parsePoolSpec('a:1', 'dalli:md5'), 'dalli takes no hash function');
  configError(() => parsePoolSpec('a:1', 'twemproxy-ketama:sha7'), 'fnv1a_64', 'murmur');
  configError(() => parsePoolSpec('::1:11211', 'ketama'), 'brackets');
});

test('a YAML pools file gives named pools with their own distributions, names and memory', () => {
  const path = file(
    'pools.yaml',
    `pools:
  old:
    hash: ketama
    servers: [10.0.0.1:11211, 10.0.0.2:11211:2]
  new:
    hash: twemproxy-ketama
    hash_function: md5
    memory: 64m
    servers:
      - 10.0.1.1:11211:1 cache-a
      - { host: 10.0.1.2, port: 11212, weight: 2, name: cache-b, memory: 1g }
  mirror:
    hash: map
    source: old
    servers: [10.0.2.1:11211, 10.0.2.2:11211]
`,
  );
  const pools = loadPools(path);
  assert.deepEqual([...pools.keys()].sort(), ['mirror', 'new', 'old']);
  const fresh = pools.get('new')!;
  assert.equal(fresh.hash, 'twemproxy-ketama');
  assert.equal(fresh.hashFunction, 'md5');
  assert.deepEqual(
    fresh.servers.map((s) => [s.address, s.weight, s.name, s.memoryLimit]),
    [
      ['10.0.1.1:11211', 1, 'cache-a', 64 * 1024 * 1024],
      ['10.0.1.2:11212', 2, 'cache-b', 1024 ** 3],
    ],
  );
  const old = pools.get('old')!;
  const mirror = pools.get('mirror')!;
  for (const key of ['a', 'user:1', 'x'.repeat(200)].map((k) => Buffer.from(k))) {
    assert.equal(mirror.distribution.serverFor(key), old.distribution.serverFor(key));
  }
});

test('a JSON pools file without the pools: level reads the same', () => {
  const path = file('pools.json', JSON.stringify({ a: { hash: 'dalli', servers: ['h1:1', 'h2:2:3'] } }));
  const pool = loadPools(path).get('a')!;
  assert.equal(pool.hash, 'dalli');
  assert.equal(pool.servers[1]!.weight, 3);
});

test('bad pools files name the file, the field and what is allowed', () => {
  configError(() => loadPools(join(dir, 'missing.yaml')), 'missing.yaml', 'ENOENT');
  configError(() => loadPools(file('bad1.yaml', 'pools: [')), 'bad1.yaml', 'not valid YAML');
  configError(
    () => loadPools(file('bad2.yaml', 'pools:\n  old:\n    hash: ketama\n    server: [a:1]\n')),
    'bad2.yaml',
    'pools.old.server',
    'allowed: hash',
  );
  configError(
    () => loadPools(file('bad3.yaml', 'pools:\n  old:\n    hash: nope\n    servers: [a:1]\n')),
    'pools.old.hash',
    'libmemcached-ketama',
  );
  configError(
    () =>
      loadPools(file('bad4.yaml', 'pools:\n  old:\n    hash: ketama\n    servers: [{ host: a, port: 0 }]\n')),
    'pools.old.servers[0].port',
    '1-65535',
  );
  configError(
    () => loadPools(file('bad5.yaml', 'pools:\n  old:\n    hash: ketama\n    servers: []\n')),
    'pools.old.servers',
    'non-empty',
  );
  configError(
    () => loadPools(file('bad6.yaml', 'pools:\n  m:\n    hash: map\n    servers: [a:1]\n')),
    'pools.m.source',
    'required',
  );
  configError(
    () =>
      loadPools(
        file('bad7.yaml', 'pools:\n  old:\n    hash: ketama\n    memory: lots\n    servers: [a:1]\n'),
      ),
    'pools.old.memory',
    '64m',
  );
});

test('resolvePool takes a pool name from the file or an inline list', () => {
  const path = file('r.yaml', 'old:\n  hash: dalli\n  servers: [a:1, b:2]\n');
  assert.equal(resolvePool('old', { poolsFile: path }).hash, 'dalli');
  const inline = resolvePool('c:3,d:4', { poolsFile: path, hash: 'pymemcache', option: '--to' });
  assert.equal(inline.hash, 'pymemcache');
  assert.equal(inline.servers.length, 2);
  assert.equal(resolvePool('e:5', {}).hash, 'libmemcached-ketama');
  configError(
    () => resolvePool('nosuch', { poolsFile: path, option: '--from' }),
    "no pool named 'nosuch'",
    'old',
  );
  configError(() => resolvePool('nosuch', { option: '--from' }), '--from', 'no --pools file');
});

test('memory sizes read as memcached -m does: binary units', () => {
  assert.equal(parseMemory('64m'), 64 * 1024 * 1024);
  assert.equal(parseMemory('1.5g'), 1.5 * 1024 ** 3);
  assert.equal(parseMemory('4096'), 4096);
  assert.equal(parseMemory(2048), 2048);
  assert.equal(parseMemory('64MiB'), 64 * 1024 * 1024);
  assert.equal(parseMemory('-1'), undefined);
  assert.equal(parseMemory('x'), undefined);
});
