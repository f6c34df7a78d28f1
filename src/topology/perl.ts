/**
 * Perl's memcached clients.
 *
 * Cache::Memcached: buckets hold each server `weight` times, in list order;
 * a key goes to buckets[((crc32(key) >> 16) & 0x7fff) % buckets] (unlike
 * python-memcached, a hash of 0 stays 0).
 *
 * Cache::Memcached::Fast without ketama_points ("compatible" dispatch): the
 * same 15-bit hash modulo the total weight, then scaled onto a continuum on
 * which each server holds a share proportional to its weight, built in double
 * precision and truncated to 32-bit points server by server. It means to
 * agree with Cache::Memcached; the table below is computed the way Fast
 * computes it, so it agrees with Fast wherever rounding would differ.
 *
 * Cache::Memcached::Fast with ketama_points => N: round(N * weight) points
 * per server, each a CRC-32 continued from the previous one: point 0 is
 * crc32("host\0port" + 4 zero bytes), point i is crc32("host\0port" + the
 * little-endian bytes of point i-1), where host and port are the server
 * address as written, split at its last ':'. The key hash is crc32(key); the
 * key goes to the first point at or above it, wrapping, and on equal points
 * the server added first wins.
 *
 * A namespace is part of the key on the wire and of the hash in all three.
 */
import { Continuum, checkPointCount } from './continuum.js';
import { crc32, crc32Add } from './hashes.js';
import { ModulaDistribution, weightedBuckets } from './modula.js';
import { CeilRing, ONLY_SERVER, type Distribution } from './ring.js';
import type { Server } from './server.js';

const MAX_POINT = 0xffffffff;

/** Cache::Memcached's _hashfunc: bits 16-30 of CRC-32. */
export function perlCacheMemcachedHash(key: Uint8Array): number {
  return (crc32(key) >>> 16) & 0x7fff;
}

export function perlCacheMemcached(servers: readonly Server[]): Distribution {
  if (servers.length === 1) return ONLY_SERVER;
  return new ModulaDistribution(perlCacheMemcachedHash, weightedBuckets(servers));
}

/**
 * Cache::Memcached::Fast's compatible dispatch as a table: entry r is the
 * server of a key whose 15-bit hash is r modulo the total weight.
 */
export function perlFastCompatibleTable(weights: readonly number[]): Uint16Array {
  const points: number[] = [];
  let total = 0;
  weights.forEach((weight) => {
    total += weight;
    const scale = weight / total;
    // p->point -= (double) p->point * scale: a double, truncated back into an unsigned int.
    for (let i = 0; i < points.length; i++) points[i] = Math.floor(points[i]! - points[i]! * scale);
    points.push(MAX_POINT);
  });
  const size = Math.floor(total + 0.5);
  const table = new Uint16Array(size);
  for (let r = 0; r < size; r++) {
    // The scaled point, rounded, then one step forward (unsigned, so MAX_POINT + 1 wraps to 0).
    const point = ((Math.floor((r / total) * MAX_POINT + 0.5) >>> 0) + 1) >>> 0;
    let at = 0;
    while (at < points.length && points[at]! < point) at++;
    table[r] = at === points.length ? 0 : at;
  }
  return table;
}

export function perlCacheMemcachedFast(servers: readonly Server[]): Distribution {
  if (servers.length === 1) return ONLY_SERVER;
  return new ModulaDistribution(
    perlCacheMemcachedHash,
    perlFastCompatibleTable(servers.map((s) => s.weight)),
  );
}

/** The address text Fast splits into host and port: IPv6 hosts keep their brackets. */
export function perlFastAddress(server: Server): { host: string; port: string } {
  return { host: server.host.includes(':') ? `[${server.host}]` : server.host, port: String(server.port) };
}

export function perlCacheMemcachedFastKetama(
  servers: readonly Server[],
  pointsPerServer: number,
): Distribution {
  if (servers.length === 1) return ONLY_SERVER;
  checkPointCount(
    `Cache::Memcached::Fast with ketama_points => ${pointsPerServer}`,
    servers.reduce((sum, s) => sum + Math.floor(pointsPerServer * s.weight + 0.5), 0),
  );
  const values: number[] = [];
  const owners: number[] = [];
  const previous = Buffer.alloc(4);
  servers.forEach((server, index) => {
    const { host, port } = perlFastAddress(server);
    const base = crc32(Buffer.from(`${host}\0${port}`, 'utf8'));
    const count = Math.floor(pointsPerServer * server.weight + 0.5);
    let point = 0;
    for (let i = 0; i < count; i++) {
      previous.writeUInt32LE(point, 0);
      point = crc32Add(base, previous);
      values.push(point);
      owners.push(index);
    }
  });
  return new CeilRing(crc32, new Continuum(values, owners, 'first'));
}
