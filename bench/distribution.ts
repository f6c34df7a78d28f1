/**
 * Key-to-server lookups per second for every distribution, single core, over
 * 100,000 application-style keys of 10-60 bytes against 3 and 10 servers.
 * Also compares the hand-written MD5 (libmemcached ketama's key hash) with
 * node:crypto's one-shot crypto.hash('md5', ...) and a createHash object per key.
 * Prints one JSON object: the median of 5 runs of about half a second each.
 */
import { createHash, hash } from 'node:crypto';
import {
  DISTRIBUTIONS,
  createDistribution,
  makeServer,
  md5First32,
  type Distribution,
} from '../src/topology/index.js';

const RUNS = 5;
const RUN_MS = 500;
const KEYS = 100_000;

function makeKeys(): Buffer[] {
  let seed = 12345;
  const random = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) | 0;
    return (seed >>> 8) / 0x1000000;
  };
  const prefixes = ['user:', 'session:', 'feed/v2/', 'cache|tmpl|', 'acl:'];
  return Array.from({ length: KEYS }, (_, i) => {
    const len = 10 + Math.floor(random() * 51);
    let s = prefixes[i % prefixes.length]! + i.toString(36) + ':';
    while (s.length < len) s += String.fromCharCode(97 + Math.floor(random() * 26));
    return Buffer.from(s.slice(0, len));
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Lookups per second: whole passes over the keys until RUN_MS has passed. */
function measure(run: (keys: Buffer[]) => number, keys: Buffer[]): number {
  const rates: number[] = [];
  let sink = 0;
  run(keys); // warm up
  for (let r = 0; r < RUNS; r++) {
    let lookups = 0;
    const start = process.hrtime.bigint();
    let elapsed = 0;
    while (elapsed < RUN_MS) {
      sink += run(keys);
      lookups += keys.length;
      elapsed = Number(process.hrtime.bigint() - start) / 1e6;
    }
    rates.push(lookups / (elapsed / 1000));
  }
  if (sink === -1) console.error('unreachable');
  return Math.round(median(rates));
}

function lookups(d: Distribution): (keys: Buffer[]) => number {
  return (keys) => {
    let acc = 0;
    for (let i = 0; i < keys.length; i++) acc += d.serverFor(keys[i]!);
    return acc;
  };
}

const keys = makeKeys();
const results: Record<string, Record<string, number>> = {};
for (const spec of DISTRIBUTIONS) {
  for (const n of [3, 10]) {
    const servers = Array.from({ length: n }, (_, i) => makeServer({ host: `10.0.0.${i + 1}`, port: 11211 }));
    const source =
      spec.name === 'map' ? { servers, distribution: createDistribution('ketama', servers) } : undefined;
    // A distribution that needs a number gets a typical one (Cache::Memcached::Fast's ketama_points).
    const name = spec.parameter ? `${spec.name}:150` : spec.name;
    const d = createDistribution(name, servers, source ? { source } : {});
    (results[name] ??= {})[`servers_${n}`] = measure(lookups(d), keys);
  }
}
const md5 = {
  handwritten_per_s: measure((ks) => {
    let acc = 0;
    for (const k of ks) acc ^= md5First32(k);
    return acc;
  }, keys),
  // Node >= 20.12 / 21.7: one call, no Hash object per key.
  node_crypto_hash_per_s: measure((ks) => {
    let acc = 0;
    for (const k of ks) acc ^= hash('md5', k, 'buffer').readUInt32LE(0);
    return acc;
  }, keys),
  node_crypto_per_s: measure(
    (ks) => {
      let acc = 0;
      for (const k of ks) acc ^= createHash('md5').update(k).digest().readUInt32LE(0);
      return acc;
    },
    keys.slice(0, 20_000),
  ),
};
console.log(
  JSON.stringify(
    {
      unit: 'lookups per second (median of 5 runs)',
      keys: `${KEYS} keys of 10-60 bytes`,
      node: process.version,
      distributions: results,
      md5_key_hash: md5,
    },
    null,
    2,
  ),
);
