/**
 * Ketama rings as libmemcached, twemproxy and spymemcached build them.
 *
 * All three hash "<server>-<i>" with MD5 and take four little-endian 32-bit
 * points from each digest; they differ in what <server> is, in how many
 * points a weight buys (each rounds through 32-bit floats, so the arithmetic
 * is reproduced with Math.fround), and in which point wins a tie.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { Continuum } from './continuum.js';
import { md5First32, md5Words, oneAtATime } from './hashes.js';
import { CeilRing, ONLY_SERVER, type Distribution, type KeyHash } from './ring.js';
import { KETAMA_DEFAULT_PORT, type Server } from './server.js';

const f32 = Math.fround;
/** libmemcached's MEMCACHED_POINTS_PER_SERVER_KETAMA and twemproxy's KETAMA_POINTS_PER_SERVER. */
const KETAMA_POINTS = 160;
/** libmemcached's MEMCACHED_POINTS_PER_SERVER, for its non-weighted "consistent" ring. */
const CONSISTENT_POINTS = 100;

/**
 * libmemcached hashes "host-i" when the port is 11211 and "host:port-i"
 * otherwise (hosts.cc, update_continuum), with the host as the application
 * wrote it; twemproxy copies the rule for unnamed servers.
 */
export function libmemcachedPointName(server: Server): string {
  return server.port === KETAMA_DEFAULT_PORT ? server.host : `${server.host}:${server.port}`;
}

export function totalWeight(servers: readonly Server[]): number {
  let total = 0;
  for (const s of servers) total += s.weight;
  return total;
}

/** libmemcached: floor((float)(pct * 160 / 4 * (float)live + 1e-10F)) * 4, all in float. */
export function libmemcachedPointCount(weight: number, total: number, live: number): number {
  const pct = f32(f32(weight) / f32(total));
  const x = f32(f32(f32(f32(pct * KETAMA_POINTS) / 4) * f32(live)) + f32(1e-10));
  return Math.floor(x) * 4;
}

/** twemproxy and spymemcached: the same product in float, the 1e-10 added in double, then back to float. */
export function twemproxyPointCount(weight: number, total: number, live: number): number {
  const pct = f32(f32(weight) / f32(total));
  const x = f32(f32(f32(f32(pct * KETAMA_POINTS) / 4) * f32(live)) + 1e-10);
  return Math.floor(x) * 4;
}

/** Adds the four points of each of `digests` MD5 digests of "<name>-<i>". */
export function addMd5Points(
  name: string,
  digests: number,
  owner: number,
  values: number[],
  owners: number[],
): void {
  const words = new Uint32Array(4);
  for (let i = 0; i < digests; i++) {
    md5Words(Buffer.from(`${name}-${i}`, 'utf8'), words);
    for (let w = 0; w < 4; w++) {
      values.push(words[w]!);
      owners.push(owner);
    }
  }
}

/**
 * libmemcached's weighted ketama (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED): what
 * php-memcached's OPT_LIBKETAMA_COMPATIBLE and pylibmc's `ketama_weighted`
 * turn on. Points from MD5, key hash = MD5 unless `keyHash` says otherwise
 * (a "consistent" pool with a weight above 1 becomes weighted but keeps its
 * own key hash).
 */
export function libmemcachedKetama(servers: readonly Server[], keyHash: KeyHash = md5First32): Distribution {
  if (servers.length === 1) return ONLY_SERVER;
  const total = totalWeight(servers);
  const values: number[] = [];
  const owners: number[] = [];
  servers.forEach((server, index) => {
    const count = libmemcachedPointCount(server.weight, total, servers.length);
    addMd5Points(libmemcachedPointName(server), count / 4, index, values, owners);
  });
  return new CeilRing(keyHash, new Continuum(values, owners, 'first'));
}

/**
 * libmemcached's MEMCACHED_DISTRIBUTION_CONSISTENT, and MEMCACHED_BEHAVIOR_KETAMA
 * without weights (php-memcached DISTRIBUTION_CONSISTENT, pylibmc `ketama: True`):
 * 100 points per server, each the key hash (one-at-a-time by default) of
 * "host:port-i". Not compatible with libketama. libmemcached switches such a
 * pool to the weighted MD5 ring as soon as one server has a weight above 1
 * (hosts.cc, server_add), keeping the configured key hash.
 */
export function libmemcachedConsistent(
  servers: readonly Server[],
  keyHash: KeyHash = oneAtATime,
): Distribution {
  if (servers.length === 1) return ONLY_SERVER;
  if (servers.some((s) => s.weight > 1)) return libmemcachedKetama(servers, keyHash);
  const values: number[] = [];
  const owners: number[] = [];
  servers.forEach((server, index) => {
    const name = libmemcachedPointName(server);
    for (let i = 0; i < CONSISTENT_POINTS; i++) {
      values.push(keyHash(Buffer.from(`${name}-${i}`, 'utf8')));
      owners.push(index);
    }
  });
  return new CeilRing(keyHash, new Continuum(values, owners, 'first'));
}

/** Java's Inet6Address text: eight groups of lowercase hex without leading zeros, nothing elided. */
export function javaIPv6Text(address: string): string | undefined {
  if (!isIPv6(address)) return undefined;
  const [head = '', tail] = address.split('::') as [string, string | undefined];
  const words = (text: string): string[] => (text === '' ? [] : text.split(':'));
  const expand = (parts: string[]): string[] =>
    parts.flatMap((part) => {
      if (!part.includes('.')) return [part];
      const b = part.split('.').map(Number);
      return [((b[0]! << 8) | b[1]!).toString(16), ((b[2]! << 8) | b[3]!).toString(16)];
    });
  const left = expand(words(head));
  const right = tail === undefined ? [] : expand(words(tail));
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((w) => parseInt(w, 16).toString(16)).join(':');
}

/**
 * What spymemcached hashes for a server: Java's InetSocketAddress text
 * without its leading '/', "ip:port" for an IPv4 address (an IPv4-mapped IPv6
 * address becomes IPv4 in Java). A server given by host name is written
 * "hostname/ip:port" after the application's JVM resolves it, and an IPv6
 * address "[a:b:...]:port" since Java 14 but "a:b:...:port" before; memshift
 * guesses neither, so such a server must carry that text as its name.
 */
export function spymemcachedNodeName(server: Server): string {
  if (server.name !== undefined) return server.name;
  if (isIPv4(server.host)) return `${server.host}:${server.port}`;
  const v6 = javaIPv6Text(server.host);
  if (v6 !== undefined) {
    const mapped = /^0:0:0:0:0:ffff:([0-9a-f]+):([0-9a-f]+)$/.exec(v6);
    if (mapped) {
      const hi = parseInt(mapped[1]!, 16);
      const lo = parseInt(mapped[2]!, 16);
      return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}:${server.port}`;
    }
    throw new RangeError(
      `spymemcached hashes an IPv6 server as Java writes it, which changed in Java 14: give ` +
        `${server.address} the name "[${v6}]:${server.port}" (Java 14 and later) or "${v6}:${server.port}" (before)`,
    );
  }
  throw new RangeError(
    `spymemcached hashes a host name as Java's "hostname/ip:port": write ${server.address} as its IP ` +
      `address, or give it that name ("${server.address} ${server.host}/IP:${server.port}", pools file: name:)`,
  );
}

/**
 * spymemcached's KetamaConnectionFactory (KetamaNodeLocator, KETAMA_HASH,
 * KetamaNodeKeyFormatter.Format.SPYMEMCACHED): 160 points per server from MD5
 * of "<socket address>-i" (spymemcachedNodeName). Java's TreeMap keeps the
 * last point put on a tie.
 */
export function spymemcachedKetama(servers: readonly Server[]): Distribution {
  const total = totalWeight(servers);
  const weighted = servers.some((s) => s.weight !== 1);
  const values: number[] = [];
  const owners: number[] = [];
  servers.forEach((server, index) => {
    const count = weighted ? twemproxyPointCount(server.weight, total, servers.length) : KETAMA_POINTS;
    addMd5Points(spymemcachedNodeName(server), count / 4, index, values, owners);
  });
  return new CeilRing(md5First32, new Continuum(values, owners, 'last'));
}
