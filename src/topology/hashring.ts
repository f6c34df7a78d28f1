/**
 * The npm `memcached` client's ring, built by the `hashring` package with the
 * options that client passes (compatibility 'ketama', default port 11211).
 *
 * Like libmemcached it takes four little-endian points from each MD5 digest
 * of "host:port-i" ("host-i" on port 11211), but it sizes a server's share in
 * double-precision floating point: Math.floor(weight / total * 40 * servers),
 * so a server can get 39 digests where libmemcached gives 40, and weights
 * round differently.
 */
import { Continuum } from './continuum.js';
import { md5First32, md5Words } from './hashes.js';
import { CeilRing, ONLY_SERVER, type Distribution } from './ring.js';
import { KETAMA_DEFAULT_PORT, type Server } from './server.js';

const VNODES = 40;
const REPLICAS = 4;

/** hashring's digests per server, computed in the same order of operations. */
export function hashringDigestCount(weight: number, total: number, servers: number): number {
  return Math.floor((weight / total) * VNODES * servers);
}

export function nodeMemcachedRing(servers: readonly Server[]): Distribution {
  // The client talks to a lone server without consulting the ring.
  if (servers.length === 1) return ONLY_SERVER;
  return hashringKetama(servers, true);
}

/**
 * npm memcache-plus: `new HashRing(["host:port", ...])` with hashring's
 * defaults, so no default port (every point name is "host:port-i") and every
 * weight 1; otherwise the same ring as node-memcached.
 */
export function memcachePlusRing(servers: readonly Server[]): Distribution {
  if (servers.length === 1) return ONLY_SERVER;
  return hashringKetama(
    servers.map((s) => ({ ...s, weight: 1 })),
    false,
  );
}

function hashringKetama(servers: readonly Server[], dropDefaultPort: boolean): Distribution {
  let total = 0;
  for (const s of servers) total += s.weight;
  const values: number[] = [];
  const owners: number[] = [];
  const words = new Uint32Array(4);
  servers.forEach((server, index) => {
    const digests = hashringDigestCount(server.weight, total, servers.length);
    const prefix =
      dropDefaultPort && server.port === KETAMA_DEFAULT_PORT ? server.host : `${server.host}:${server.port}`;
    for (let i = 0; i < digests; i++) {
      md5Words(Buffer.from(`${prefix}-${i}`, 'utf8'), words);
      for (let r = 0; r < REPLICAS; r++) {
        values.push(words[r]!);
        owners.push(index);
      }
    }
  });
  // Array.prototype.sort is stable, so equal points keep insertion order: 'first'.
  return new CeilRing(md5First32, new Continuum(values, owners, 'first'));
}
