/**
 * Properties of the distributions beyond the recorded rows: hash functions
 * against published values, balance of the consistent rings, how few keys
 * move when a server joins or leaves, weights, ties, and the 1:1 map.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import {
  Continuum,
  crc32,
  createDistribution,
  fnv1a_32,
  hashringDigestCount,
  javaStringHash,
  makeServer,
  md5First32,
  md5Words,
  murmur3_32,
  oneAtATime,
  type Distribution,
  type Server,
} from '../src/topology/index.js';
import { rng } from './support/chunks.js';

function servers(n: number, weights?: number[]): Server[] {
  return Array.from({ length: n }, (_, i) =>
    makeServer({ host: `10.0.0.${i + 1}`, port: 11211, weight: weights?.[i] }),
  );
}

/** A fixed, varied key set: app-style keys of 10-60 bytes. */
function keys(count: number, seed = 7): Buffer[] {
  const random = rng(seed);
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const len = 10 + Math.floor(random() * 51);
    let s = `k${i}:`;
    while (s.length < len) s += String.fromCharCode(33 + Math.floor(random() * 94));
    out.push(Buffer.from(s.slice(0, len)));
  }
  return out;
}

function shares(d: Distribution, n: number, ks: Buffer[]): number[] {
  const counts = new Array<number>(n).fill(0);
  for (const k of ks) counts[d.serverFor(k)]!++;
  return counts.map((c) => c / ks.length);
}

test('MD5 matches node:crypto at every length across block boundaries', () => {
  const words = new Uint32Array(4);
  for (let len = 0; len < 200; len++) {
    const b = Buffer.alloc(len, len * 7 + 1);
    const want = createHash('md5').update(b).digest();
    md5Words(b, words);
    for (let i = 0; i < 4; i++) assert.equal(words[i], want.readUInt32LE(i * 4), `length ${len}`);
    assert.equal(md5First32(b), want.readUInt32LE(0));
  }
});

test('hash functions give their published check values', () => {
  const check = Buffer.from('123456789');
  assert.equal(crc32(check), 0xcbf43926);
  assert.equal(fnv1a_32(Buffer.alloc(0)), 0x811c9dc5);
  assert.equal(fnv1a_32(Buffer.from('a')), 0xe40c292c);
  assert.equal(murmur3_32(Buffer.from('hello')), 0x248bfa47);
  assert.equal(oneAtATime(Buffer.from('a')), 0xca2e9442);
  assert.equal(javaStringHash(Buffer.from('hello')), 99162322);
  // Java hashes UTF-16 units: 'é' is one unit, '😀' a surrogate pair.
  assert.equal(javaStringHash(Buffer.from('héllo😀')), 291564465);
});

test('one-at-a-time reads bytes as signed chars, as libmemcached does on x86', () => {
  // With unsigned bytes, 0xe9 would add 233; libmemcached adds (uint32_t)(char)0xe9 = 0xffffffe9.
  assert.notEqual(oneAtATime(Buffer.from([0xe9])), oneAtATime(Buffer.from([0xe9, 0x00]).subarray(0, 1)) + 1);
  let v = (0xffffffe9 + 0) | 0;
  v = (v + (v << 10)) | 0;
  v ^= v >>> 6;
  v = (v + (v << 3)) | 0;
  v ^= v >>> 11;
  v = (v + (v << 15)) | 0;
  assert.equal(oneAtATime(Buffer.from([0xe9])), v >>> 0);
});

test('gomemcache picks crc32(key) % servers in list order', () => {
  const list = servers(3);
  const d = createDistribution('gomemcache', list);
  for (const k of keys(200)) assert.equal(d.serverFor(k), crc32(k) % 3);
  assert.equal(createDistribution('gomemcache', servers(1)).serverFor(Buffer.from('x')), 0);
});

const RINGS = [
  'libmemcached-ketama',
  'libmemcached-consistent',
  'dalli',
  'node-memcached',
  'spymemcached-ketama',
  'twemproxy-ketama',
  'pymemcache',
];

for (const name of RINGS) {
  test(`${name} spreads keys evenly over 10 equal servers`, () => {
    const ks = keys(50_000);
    const s = shares(createDistribution(name, servers(10)), 10, ks);
    // 100-160 points per server keep every share within a third of the mean.
    for (const share of s) assert.ok(share > 0.1 * 0.67 && share < 0.1 * 1.33, `${name}: ${s.join(', ')}`);
  });

  test(`${name} moves only about 1/(n+1) of the keys, all to the new server, when a server joins`, () => {
    const ks = keys(30_000, 11);
    const before = createDistribution(name, servers(9));
    const after = createDistribution(name, servers(10));
    let moved = 0;
    let movedElsewhere = 0;
    for (const k of ks) {
      const a = before.serverFor(k);
      const b = after.serverFor(k);
      if (a !== b) {
        moved++;
        if (b !== 9) movedElsewhere++;
      }
    }
    assert.ok(moved / ks.length < 0.15, `${name} moved ${moved}`);
    assert.ok(moved / ks.length > 0.05, `${name} moved ${moved}`);
    // hashring sizes shares in floating point, so a few points of old servers can shift too.
    assert.ok(movedElsewhere / ks.length < 0.01, `${name} moved ${movedElsewhere} between old servers`);
  });

  test(`${name} moves only the keys of a server that leaves`, () => {
    const ks = keys(20_000, 13);
    const all = servers(8);
    const before = createDistribution(name, all);
    const after = createDistribution(name, all.slice(0, 7));
    let strays = 0;
    for (const k of ks) {
      const a = before.serverFor(k);
      if (a !== 7 && after.serverFor(k) !== a) strays++;
    }
    if (name === 'node-memcached') {
      // hashring gives each of 7 equal servers floor(1/7 * 40 * 7) = 39 digests, not 40, so
      // shrinking to 7 also drops a digest from every staying server: a few of their keys move.
      assert.equal(hashringDigestCount(1, 7, 7), 39);
      assert.ok(strays > 0 && strays / ks.length < 0.05, `${name}: ${strays}`);
    } else {
      assert.ok(strays / ks.length < 0.01, `${name}: ${strays} keys of staying servers moved`);
    }
  });
}

for (const name of ['libmemcached-modula', 'python-memcached', 'memjs', 'spymemcached', 'gomemcache']) {
  test(`${name} (modulo) moves most keys when a server joins`, () => {
    const ks = keys(10_000, 17);
    const before = createDistribution(name, servers(9));
    const after = createDistribution(name, servers(10));
    let moved = 0;
    for (const k of ks) if (before.serverFor(k) !== after.serverFor(k)) moved++;
    assert.ok(moved / ks.length > 0.8, `${name} moved ${moved}`);
  });
}

for (const name of [
  'libmemcached-ketama',
  'dalli',
  'node-memcached',
  'twemproxy-ketama',
  'python-memcached',
]) {
  test(`${name} gives a weight-3 server about three times the keys of a weight-1 server`, () => {
    const ks = keys(40_000, 19);
    const s = shares(createDistribution(name, servers(4, [1, 1, 3, 1])), 4, ks);
    const ratio = s[2]! / ((s[0]! + s[1]! + s[3]!) / 3);
    assert.ok(ratio > 2.4 && ratio < 3.6, `${name}: ${s.join(', ')}`);
  });
}

test('ties on the continuum: C clients keep the lower server index, Java the one put last', () => {
  const first = new Continuum([5, 5, 9], [0, 1, 2], 'first');
  const last = new Continuum([5, 5, 9], [0, 1, 2], 'last');
  assert.equal(first.ceil(5), 0);
  assert.equal(last.ceil(5), 1);
  assert.equal(first.ceil(6), 2);
  assert.equal(first.ceil(10), 0); // wraps
  assert.equal(first.floor(4), 2); // wraps to the last point
  assert.equal(first.floor(9), 2);
});

test('map sends each key to the new server in its old server position', () => {
  const old = createDistribution('ketama', servers(3));
  const fresh = servers(3).map((s, i) => makeServer({ host: `10.1.0.${i + 1}`, port: s.port }));
  const map = createDistribution('map', fresh, { source: { servers: servers(3), distribution: old } });
  for (const k of keys(500)) assert.equal(map.serverFor(k), old.serverFor(k));
  assert.throws(
    () => createDistribution('map', servers(2), { source: { servers: servers(3), distribution: old } }),
    /pairs servers by position/,
  );
});

test('every distribution answers an index inside the pool, even for empty and 250-byte keys', () => {
  const edge = [
    Buffer.alloc(0),
    Buffer.alloc(250, 0x7a),
    Buffer.from([0xff, 0x80, 0x00]),
    Buffer.from('ключ😀'),
  ];
  for (const name of [
    ...RINGS,
    'libmemcached-modula',
    'python-memcached',
    'memjs',
    'spymemcached',
    'gomemcache',
  ]) {
    for (const n of [1, 2, 5]) {
      const d = createDistribution(name, servers(n));
      for (const k of edge) {
        const i = d.serverFor(k);
        assert.ok(Number.isInteger(i) && i >= 0 && i < n, `${name}/${n}: ${i}`);
      }
    }
  }
});
