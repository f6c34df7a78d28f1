/**
 * PHP's PECL memcache extension (the `Memcache` class), with its two
 * `memcache.hash_strategy` settings and two `memcache.hash_function` ones.
 *
 * The hash functions: "crc32" is the standard CRC-32; "fnv" is 32-bit FNV-1a
 * over `char`s, so bytes of 0x80 and above are sign-extended (fnv1a_32).
 *
 * "standard" is a modulo: ((hash >> 16) & 0x7fff, 0 read as 1) over buckets
 * that hold each server `weight` times, in the order servers were added.
 *
 * "consistent" builds a ring of weight * 160 points per server, point i being
 * hash("host:port-i") with the host as the application wrote it, and then
 * does not search that ring per key: it samples the ring once into 1024
 * buckets (bucket b owns the server of the first point at or above
 * b * floor(0xffffffff / 1024)) and sends a key to bucket hash(key) % 1024.
 * So the key hash's low ten bits pick the server, and whole stretches of the
 * ring that fall between two samples own no key at all.
 *
 * The extension turns key bytes at or below 0x20 into '_' and cuts keys at
 * 250 bytes before hashing; the key memshift sees on the wire is already
 * that key.
 */
import { Continuum, checkPointCount } from './continuum.js';
import { crc32, fnv1a_32 } from './hashes.js';
import { ModulaDistribution, weightedBuckets } from './modula.js';
import { ONLY_SERVER, type Distribution, type KeyHash } from './ring.js';
import type { Server } from './server.js';

/** MMC_CONSISTENT_POINTS: points per unit of weight. */
const POINTS = 160;
/** MMC_CONSISTENT_BUCKETS: the lookup table's size (a power of two). */
const BUCKETS = 1024;
/** The distance between two samples of the ring: 0xffffffff / 1024 in unsigned integers. */
const STEP = Math.floor(0xffffffff / BUCKETS);

/** The `memcache.hash_function` names. */
export const PHP_MEMCACHE_HASHES: ReadonlyMap<string, KeyHash> = new Map([
  ['crc32', crc32],
  ['fnv', fnv1a_32],
]);

/**
 * The text the extension hashes for a server's points: "host:port-" with the
 * host as written. It connects to "host:port" built the same way, so an IPv6
 * host only works written in brackets, and is hashed so.
 */
export function phpMemcachePointPrefix(server: Server): string {
  return `${server.address}-`;
}

/** Maps a key to the server its bucket was given when the ring was sampled. */
export class BucketTableDistribution implements Distribution {
  constructor(
    private readonly hash: KeyHash,
    private readonly table: Uint16Array,
  ) {}

  serverFor(key: Buffer): number {
    return this.table[this.hash(key) & (BUCKETS - 1)]!;
  }
}

/** memcache.hash_strategy=consistent with the given hash function. */
export function phpMemcacheConsistent(servers: readonly Server[], hash: KeyHash = crc32): Distribution {
  if (servers.length === 1) return ONLY_SERVER;
  checkPointCount(
    'PECL memcache consistent',
    servers.reduce((sum, s) => sum + s.weight * POINTS, 0),
  );
  const values: number[] = [];
  const owners: number[] = [];
  servers.forEach((server, index) => {
    const prefix = phpMemcachePointPrefix(server);
    for (let i = 0; i < server.weight * POINTS; i++) {
      values.push(hash(Buffer.from(`${prefix}${i}`, 'utf8')));
      owners.push(index);
    }
  });
  // qsort orders equal points arbitrarily; a tie between two servers' points is rare enough
  // (32-bit values) that 'first' stands for it.
  const ring = new Continuum(values, owners, 'first');
  const table = new Uint16Array(BUCKETS);
  for (let b = 0; b < BUCKETS; b++) table[b] = ring.ceil(STEP * b);
  return new BucketTableDistribution(hash, table);
}

/** memcache.hash_strategy=standard: the "new-style" 15-bit hash, never 0, modulo the weighted buckets. */
export function phpMemcacheStandard(servers: readonly Server[], hash: KeyHash = crc32): Distribution {
  if (servers.length === 1) return ONLY_SERVER;
  return new ModulaDistribution((key) => (hash(key) >>> 16) & 0x7fff || 1, weightedBuckets(servers));
}
