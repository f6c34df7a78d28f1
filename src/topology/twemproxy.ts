/**
 * twemproxy (nutcracker) pools: `distribution: ketama` and `distribution:
 * modula` with the pool's `hash:` (fnv1a_64 unless set).
 *
 * twemproxy sorts a pool's servers by name while validating its
 * configuration (conf_validate_server: array_sort by string_compare, which
 * orders by length first, then bytes), so modulo buckets follow that order,
 * not the order the file lists. A server's name is its own (`host:port:weight
 * name`) or, as in libmemcached, "host" on port 11211 and "host:port"
 * otherwise.
 */
import { Continuum } from './continuum.js';
import { addMd5Points, libmemcachedPointName, totalWeight, twemproxyPointCount } from './ketama.js';
import { ModulaDistribution } from './modula.js';
import { CeilRing, type Distribution, type KeyHash } from './ring.js';
import type { Server } from './server.js';

export function twemproxyServerName(server: Server): string {
  return server.name ?? libmemcachedPointName(server);
}

/** Indices of `servers` in the order twemproxy holds them. */
export function twemproxyServerOrder(servers: readonly Server[]): number[] {
  const names = servers.map((s) => Buffer.from(twemproxyServerName(s), 'utf8'));
  return servers
    .map((_, i) => i)
    .sort((a, b) => names[a]!.length - names[b]!.length || Buffer.compare(names[a]!, names[b]!));
}

/**
 * `distribution: ketama`: points from MD5 of "<name>-i", four per digest,
 * the count per server from the weights in 32-bit float (nc_ketama.c); the
 * key hash is the pool's. twemproxy uses the ring even for one server.
 */
export function twemproxyKetama(servers: readonly Server[], keyHash: KeyHash): Distribution {
  const total = totalWeight(servers);
  const values: number[] = [];
  const owners: number[] = [];
  for (const index of twemproxyServerOrder(servers)) {
    const server = servers[index]!;
    const count = twemproxyPointCount(server.weight, total, servers.length);
    addMd5Points(twemproxyServerName(server), count / 4, index, values, owners);
  }
  return new CeilRing(keyHash, new Continuum(values, owners, 'first'));
}

/** `distribution: modula`: hash % total weight over buckets, each server `weight` times, in twemproxy's order. */
export function twemproxyModula(servers: readonly Server[], keyHash: KeyHash): Distribution {
  const buckets: number[] = [];
  for (const index of twemproxyServerOrder(servers)) {
    for (let w = 0; w < servers[index]!.weight; w++) buckets.push(index);
  }
  return new ModulaDistribution(keyHash, Uint16Array.from(buckets));
}
