/**
 * memshift's placement against rows recorded from the real client libraries
 * (test/fixtures/placement, produced by scripts/placement/produce.sh): every
 * key a client stored must map to the server the client stored it on.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  ConfigError,
  createDistribution,
  makeServer,
  splitServerText,
  type Server,
} from '../src/topology/index.js';

const dir = new URL('../../test/fixtures/placement/', import.meta.url);

interface Row {
  header: {
    client: string;
    distribution: string;
    servers: string[];
    weights: number[];
    server_names: string[] | null;
    stored: number;
    found: number;
  };
  owners: string;
}

const keys = (JSON.parse(readFileSync(new URL('keys.json', dir), 'utf8')) as { keys: string[] }).keys.map(
  (k) => Buffer.from(k, 'utf8'),
);
const rows = readdirSync(dir)
  .filter((f) => f.endsWith('.json') && f !== 'keys.json')
  .sort()
  .map((file) => ({ file, row: JSON.parse(readFileSync(new URL(file, dir), 'utf8')) as Row }));

function serversOf(row: Row): Server[] {
  return row.header.servers.map((text, i) => {
    const part = splitServerText(text);
    assert.ok(part.ok, text);
    return makeServer({ ...part, weight: row.header.weights[i], name: row.header.server_names?.[i] });
  });
}

test('the fixtures hold a few thousand keys and rows for every client distribution at 3, 5 and 7 servers', () => {
  assert.ok(keys.length >= 2000);
  const seen = new Map<string, Set<number>>();
  for (const { row } of rows) {
    const name = row.header.distribution.split(':')[0]!;
    const counts = seen.get(name) ?? new Set<number>();
    counts.add(row.header.servers.length);
    seen.set(name, counts);
  }
  for (const name of [
    'libmemcached-ketama',
    'libmemcached-consistent',
    'libmemcached-modula',
    'dalli',
    'pymemcache',
    'node-memcached',
    'memjs',
    'spymemcached',
    'spymemcached-ketama',
    'gomemcache',
    'python-memcached',
    'twemproxy-ketama',
    'twemproxy-modula',
    'pymemcache-bytes',
    'memcache-plus',
    'php-memcache-consistent',
    'php-memcache-standard',
    'perl-cache-memcached',
    'perl-cache-memcached-fast',
    'perl-cache-memcached-fast-ketama',
  ]) {
    assert.deepEqual([...(seen.get(name) ?? [])].sort(), [3, 5, 7], `rows for ${name}`);
  }
});

test('every distribution a row was recorded for has a row with its servers written as localhost', () => {
  const all = new Set(rows.map(({ row }) => row.header.distribution));
  const byName = new Set(
    rows
      .filter(({ row }) => row.header.servers.every((s) => s.startsWith('localhost:')))
      .map(({ row }) => row.header.distribution),
  );
  assert.deepEqual([...all].filter((d) => !byName.has(d)).sort(), []);
});

test('a family whose rows have weights is recorded with weights by host name too', () => {
  const weighted = new Set(
    rows
      .filter(({ row }) => row.header.weights.some((w) => w !== 1))
      .map(({ row }) => row.header.distribution),
  );
  for (const d of weighted) {
    assert.ok(
      rows.some(
        ({ row }) =>
          row.header.distribution === d &&
          row.header.weights.some((w) => w !== 1) &&
          row.header.servers[0]!.startsWith('localhost:'),
      ),
      d,
    );
  }
});

test('spymemcached-ketama refuses a server given by host name without the name Java hashes, in one line', () => {
  const servers = ['localhost:11211', '127.0.0.1:11212'].map((text) => {
    const part = splitServerText(text);
    assert.ok(part.ok);
    return makeServer(part);
  });
  assert.throws(
    () => createDistribution('spymemcached-ketama', servers),
    (err: Error) =>
      err instanceof ConfigError &&
      !err.message.includes('\n') &&
      err.message.includes('"localhost:11211 localhost/IP:11211"'),
  );
  const named = splitServerText('localhost:11211 localhost/127.0.0.1:11211');
  assert.ok(named.ok);
  assert.doesNotThrow(() => createDistribution('spymemcached-ketama', [makeServer(named), servers[1]!]));
});

for (const { file, row } of rows) {
  test(`placement matches ${file} (${row.header.client})`, () => {
    assert.equal(row.owners.length, keys.length);
    const distribution = createDistribution(row.header.distribution, serversOf(row));
    let checked = 0;
    const wrong: string[] = [];
    for (let i = 0; i < keys.length; i++) {
      const c = row.owners.charCodeAt(i);
      if (c === 0x2d) continue; // '-': the client refused this key
      checked++;
      const got = distribution.serverFor(keys[i]!);
      if (got !== c - 0x30 && wrong.length < 5)
        wrong.push(`${JSON.stringify(keys[i]!.toString())}: ${got} != ${c - 0x30}`);
    }
    assert.equal(checked, row.header.found);
    // Only a client that rewrites keys on the wire (npm memcached with '$' patterns) loses a few.
    assert.ok(checked >= row.header.stored * 0.95, `${checked} of ${row.header.stored} stored keys found`);
    assert.deepEqual(wrong, []);
  });
}

// Families that hash the server's name: for them the localhost rows prove the name is hashed as
// written, since the same servers written as 127.0.0.1 place keys elsewhere.
const NAME_HASHING = [
  'libmemcached-ketama',
  'libmemcached-consistent',
  'dalli',
  'pymemcache',
  'pymemcache-bytes',
  'node-memcached',
  'memcache-plus',
  'spymemcached-ketama',
  'twemproxy-ketama',
  'php-memcache-consistent',
  'perl-cache-memcached-fast-ketama',
];

test('for families that hash server names, localhost and 127.0.0.1 place keys differently', () => {
  const checked = new Set<string>();
  for (const { row } of rows) {
    const family = row.header.distribution.split(':')[0]!;
    if (!NAME_HASHING.includes(family) || !row.header.servers[0]!.startsWith('localhost:')) continue;
    const byName = createDistribution(row.header.distribution, serversOf(row));
    const byAddress = createDistribution(
      row.header.distribution,
      serversOf(row).map((s) => makeServer({ ...s, host: '127.0.0.1', name: undefined })),
    );
    let differ = 0;
    for (const key of keys) if (byName.serverFor(key) !== byAddress.serverFor(key)) differ++;
    // A 15-bit key hash (twemproxy's crc32) reaches only the bottom of a ring: judge each family by its
    // rows together.
    if (differ > keys.length / 10) checked.add(family);
  }
  assert.deepEqual([...checked].sort(), [...NAME_HASHING].sort());
});

test('a distribution that takes a number refuses a missing or bad one', () => {
  const servers = [makeServer({ host: '127.0.0.1', port: 1 }), makeServer({ host: '127.0.0.1', port: 2 })];
  for (const name of ['perl-cache-memcached-fast-ketama', 'perl-cache-memcached-fast-ketama:x']) {
    assert.throws(
      () => createDistribution(name, servers),
      /ketama_points as perl-cache-memcached-fast-ketama:N/,
    );
  }
  assert.throws(() => createDistribution('php-memcache-consistent:md5', servers), /allowed: crc32, fnv/);
});

test('a ring whose weights ask for more points than memshift holds is refused in one line, before it is built', () => {
  const servers = [
    makeServer({ host: '127.0.0.1', port: 1, weight: 65535 }),
    makeServer({ host: '127.0.0.1', port: 2 }),
  ];
  for (const name of ['php-memcache-consistent', 'perl-cache-memcached-fast-ketama:100']) {
    assert.throws(
      () => createDistribution(name, servers),
      (err: Error) =>
        err instanceof ConfigError && /points on its ring .*lower the weights/.test(err.message),
    );
  }
});

test('spymemcached-ketama hashes IPv4-mapped IPv6 as Java does and asks for the name of any other IPv6 server', () => {
  const at = (host: string): Server => makeServer({ host, port: 11211 });
  const mapped = createDistribution('spymemcached-ketama', [at('::ffff:10.0.0.1'), at('10.0.0.2')]);
  const plain = createDistribution('spymemcached-ketama', [at('10.0.0.1'), at('10.0.0.2')]);
  for (const key of keys.slice(0, 200)) assert.equal(mapped.serverFor(key), plain.serverFor(key));
  assert.throws(
    () => createDistribution('spymemcached-ketama', [at('2001:db8::1'), at('10.0.0.2')]),
    (err: Error) =>
      err instanceof ConfigError &&
      err.message.includes('"[2001:db8:0:0:0:0:0:1]:11211" (Java 14 and later)') &&
      err.message.includes('"2001:db8:0:0:0:0:0:1:11211" (before)'),
  );
});

test("pymemcache-bytes hashes exactly Python 3's repr of the key, control and high bytes included", async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { pythonBytesRepr } = await import('../src/topology/rendezvous.js');
  // Every byte value, quotes of both kinds, and random binary keys (the binary protocol allows any byte).
  const samples: Buffer[] = [Buffer.from("a'b"), Buffer.from('a"b'), Buffer.from(`a'"b\\`), Buffer.alloc(0)];
  for (let b = 0; b < 256; b++) samples.push(Buffer.from([0x41, b, 0x42]));
  let seed = 7;
  for (let i = 0; i < 200; i++) {
    const key = Buffer.alloc(1 + (i % 40));
    for (let j = 0; j < key.length; j++) {
      seed = (Math.imul(seed, 1103515245) + 12345) | 0;
      key[j] = (seed >>> 16) & 0xff;
    }
    samples.push(key);
  }
  const script = 'import sys\nfor line in sys.stdin:\n    print(repr(bytes.fromhex(line.strip())))\n';
  const child = promisify(execFile)('/usr/bin/python3', ['-c', script]);
  child.child.stdin!.end(samples.map((k) => k.toString('hex')).join('\n') + '\n');
  const expected = (await child).stdout.split('\n').slice(0, samples.length);
  const out = new Uint8Array(4 * 64 + 3);
  const got = samples.map((k) => Buffer.from(out.subarray(0, pythonBytesRepr(k, out))).toString('latin1'));
  assert.deepEqual(got, expected);
});
