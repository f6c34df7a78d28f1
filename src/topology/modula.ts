/**
 * Modulo distributions: hash(key) mod a bucket count. Every client below
 * moves almost every key when the server count changes; they are here so
 * memshift lands keys where those clients will look.
 */
import { crc32, javaStringHash, oneAtATime } from './hashes.js';
import { ONLY_SERVER, type Distribution, type KeyHash } from './ring.js';
import type { Server } from './server.js';

/** hash(key) % buckets.length picks a bucket; each bucket names a server. */
export class ModulaDistribution implements Distribution {
  constructor(
    private readonly hash: KeyHash,
    private readonly buckets: Uint16Array,
  ) {}

  serverFor(key: Buffer): number {
    return this.buckets[this.hash(key) % this.buckets.length]!;
  }
}

function oneBucketEach(servers: readonly Server[]): Uint16Array {
  return Uint16Array.from(servers, (_, i) => i);
}

/** A server repeated `weight` times, in list order (python-memcached's and twemproxy's buckets). */
export function weightedBuckets(servers: readonly Server[]): Uint16Array {
  const buckets: number[] = [];
  servers.forEach((server, index) => {
    for (let w = 0; w < server.weight; w++) buckets.push(index);
  });
  return Uint16Array.from(buckets);
}

/**
 * libmemcached's default MEMCACHED_DISTRIBUTION_MODULA (php-memcached and
 * pylibmc unless told otherwise): hash(key) % servers, one-at-a-time by
 * default; weights are ignored.
 */
export function libmemcachedModula(servers: readonly Server[], keyHash: KeyHash = oneAtATime): Distribution {
  if (servers.length === 1) return ONLY_SERVER;
  return new ModulaDistribution(keyHash, oneBucketEach(servers));
}

/** python-memcached's cmemcache_hash: bits 16-30 of CRC-32, and never 0. */
export function pythonMemcachedHash(key: Uint8Array): number {
  return (crc32(key) >>> 16) & 0x7fff || 1;
}

/**
 * python-memcached (memcache.Client): buckets hold each server `weight`
 * times; the key goes to buckets[cmemcache_hash(key) % buckets].
 */
export function pythonMemcached(servers: readonly Server[]): Distribution {
  return new ModulaDistribution(pythonMemcachedHash, weightedBuckets(servers));
}

/** gomemcache's ServerList.PickServer: crc32.ChecksumIEEE(key) % servers. */
export function gomemcache(servers: readonly Server[]): Distribution {
  if (servers.length === 1) return ONLY_SERVER;
  return new ModulaDistribution(crc32, oneBucketEach(servers));
}

/** memjs: Math.abs of Java's string hash, then % servers. */
export function memjsHash(key: Uint8Array): number {
  return Math.abs(javaStringHash(key));
}

export function memjs(servers: readonly Server[]): Distribution {
  if (servers.length === 1) return ONLY_SERVER;
  return new ModulaDistribution(memjsHash, oneBucketEach(servers));
}

/** spymemcached's NATIVE_HASH: String.hashCode() masked to an unsigned 32-bit value. */
export function spymemcachedNativeHash(key: Uint8Array): number {
  return javaStringHash(key) >>> 0;
}

/** spymemcached's DefaultConnectionFactory: ArrayModNodeLocator with NATIVE_HASH. */
export function spymemcachedDefault(servers: readonly Server[]): Distribution {
  return new ModulaDistribution(spymemcachedNativeHash, oneBucketEach(servers));
}
