/**
 * The registry of key distributions: a name (as users write it after
 * `--hash` or `hash:` in a pools file) to the function that builds the
 * distribution for a server list. Each entry says which clients, with which
 * settings, place keys exactly this way; test/fixtures/placement holds the
 * rows recorded from those clients that prove it.
 */
import { ConfigError } from './config-error.js';
import { dalliRing } from './dalli.js';
import { TWEMPROXY_HASHES, md5First32, oneAtATime } from './hashes.js';
import { nodeMemcachedRing } from './hashring.js';
import { libmemcachedConsistent, libmemcachedKetama, spymemcachedKetama } from './ketama.js';
import { MapDistribution } from './map.js';
import { gomemcache, libmemcachedModula, memjs, pythonMemcached, spymemcachedDefault } from './modula.js';
import { perlCacheMemcached, perlCacheMemcachedFast, perlCacheMemcachedFastKetama } from './perl.js';
import { PHP_MEMCACHE_HASHES, phpMemcacheConsistent, phpMemcacheStandard } from './php-memcache.js';
import { memcachePlusRing } from './hashring.js';
import { pymemcacheBytesRendezvous, pymemcacheRendezvous } from './rendezvous.js';
import { twemproxyKetama, twemproxyModula } from './twemproxy.js';
import type { Distribution, KeyHash } from './ring.js';
import type { Server } from './server.js';

export type { Distribution, KeyHash } from './ring.js';

/** What a factory receives besides the servers. */
export interface DistributionContext {
  /** The key hash chosen with `name:function` or `hash_function:`, when the distribution takes one. */
  readonly keyHash: KeyHash | undefined;
  /** For `map`: the pool whose servers are paired, in order, with these. */
  readonly source: { readonly servers: readonly Server[]; readonly distribution: Distribution } | undefined;
  /** The number given with `name:N`, for a distribution that takes one. */
  readonly parameter: number | undefined;
}

/** A number a distribution takes after `name:` (Cache::Memcached::Fast's ketama_points). */
export interface DistributionParameter {
  /** What the number is, for messages. */
  readonly what: string;
  readonly min: number;
  readonly max: number;
}

export interface DistributionSpec {
  /** The canonical name. */
  readonly name: string;
  readonly aliases: readonly string[];
  /** The clients and settings this matches, for `memshift plan --help` and the docs. */
  readonly matches: string;
  /** Whether server weights change placement. */
  readonly weights: boolean;
  /** Key hash functions accepted after `name:`; absent when the distribution takes none. */
  readonly keyHashes?: ReadonlyMap<string, KeyHash>;
  readonly defaultKeyHash?: string;
  /** A number required after `name:`; absent when the distribution takes none. */
  readonly parameter?: DistributionParameter;
  create(servers: readonly Server[], context: DistributionContext): Distribution;
}

/** libmemcached's own hash names (php-memcached OPT_HASH, pylibmc `hash`). */
const LIBMEMCACHED_HASHES: ReadonlyMap<string, KeyHash> = new Map([
  ['default', oneAtATime],
  ['one_at_a_time', oneAtATime],
  ['md5', md5First32],
  ['crc', TWEMPROXY_HASHES.get('crc32')!],
  ['fnv1_64', TWEMPROXY_HASHES.get('fnv1_64')!],
  ['fnv1a_64', TWEMPROXY_HASHES.get('fnv1a_64')!],
  ['fnv1_32', TWEMPROXY_HASHES.get('fnv1_32')!],
  ['fnv1a_32', TWEMPROXY_HASHES.get('fnv1a_32')!],
  ['hsieh', TWEMPROXY_HASHES.get('hsieh')!],
  ['murmur', TWEMPROXY_HASHES.get('murmur')!],
  ['jenkins', TWEMPROXY_HASHES.get('jenkins')!],
]);

export const DISTRIBUTIONS: readonly DistributionSpec[] = [
  {
    name: 'libmemcached-ketama',
    aliases: ['ketama', 'libketama', 'php-ketama', 'pylibmc-ketama-weighted', 'twemproxy-ketama-md5'],
    matches:
      'libmemcached weighted ketama: php-memcached with OPT_LIBKETAMA_COMPATIBLE, pylibmc ' +
      'behaviors {"ketama_weighted": True}, twemproxy `distribution: ketama` with `hash: md5`',
    weights: true,
    create: (servers) => libmemcachedKetama(servers),
  },
  {
    name: 'libmemcached-consistent',
    aliases: ['consistent', 'php-consistent', 'pylibmc-ketama'],
    matches:
      'libmemcached MEMCACHED_DISTRIBUTION_CONSISTENT / BEHAVIOR_KETAMA: php-memcached ' +
      'OPT_DISTRIBUTION=DISTRIBUTION_CONSISTENT, pylibmc behaviors {"ketama": True}; 100 points per ' +
      'server from the key hash (one-at-a-time unless set); not libketama-compatible',
    weights: true,
    keyHashes: LIBMEMCACHED_HASHES,
    defaultKeyHash: 'one_at_a_time',
    create: (servers, { keyHash }) => libmemcachedConsistent(servers, keyHash),
  },
  {
    name: 'libmemcached-modula',
    aliases: ['modula', 'libmemcached', 'php-memcached', 'pylibmc'],
    matches:
      'libmemcached default MEMCACHED_DISTRIBUTION_MODULA: php-memcached and pylibmc defaults; ' +
      'hash(key) % servers, one-at-a-time unless set, weights ignored',
    weights: false,
    keyHashes: LIBMEMCACHED_HASHES,
    defaultKeyHash: 'one_at_a_time',
    create: (servers, { keyHash }) => libmemcachedModula(servers, keyHash),
  },
  {
    name: 'dalli',
    aliases: ['ruby-dalli'],
    matches: "Ruby Dalli::Client's ring (SHA-1 points, CRC-32 key, weights from host:port:weight)",
    weights: true,
    create: (servers) => dalliRing(servers),
  },
  {
    name: 'pymemcache',
    aliases: ['pymemcache-hash', 'rendezvous'],
    matches:
      'pymemcache HashClient given str keys (rendezvous hashing, murmur3_32 of "host:port-key"); ' +
      'bytes keys are `pymemcache-bytes`; no weights',
    weights: false,
    create: (servers) => pymemcacheRendezvous(servers),
  },
  {
    name: 'pymemcache-bytes',
    aliases: [],
    matches:
      "pymemcache HashClient given bytes keys under Python 3 (it hashes \"host:port-b'key'\", the key's repr); " +
      'an application that passes str keys is `pymemcache`',
    weights: false,
    create: (servers) => pymemcacheBytesRendezvous(servers),
  },
  {
    name: 'node-memcached',
    aliases: ['npm-memcached', 'hashring'],
    matches:
      'npm `memcached` (hashring with its ketama compatibility: 40 MD5 digests per server in floating point)',
    weights: true,
    create: (servers) => nodeMemcachedRing(servers),
  },
  {
    name: 'memcache-plus',
    aliases: ['npm-memcache-plus'],
    matches:
      'npm `memcache-plus` (hashring with its defaults: like node-memcached, but "host:port-i" even on ' +
      'port 11211, and no weights)',
    weights: false,
    create: (servers) => memcachePlusRing(servers),
  },
  {
    name: 'spymemcached-ketama',
    aliases: ['spy-ketama', 'java-ketama'],
    matches:
      'spymemcached KetamaConnectionFactory (KETAMA_HASH, node keys "ip:port-i"); a server given by ' +
      'host name is refused unless its name is Java\'s "hostname/ip:port" (`localhost:11211 ' +
      'localhost/127.0.0.1:11211`)',
    weights: true,
    create: (servers) => spymemcachedKetama(servers),
  },
  {
    name: 'spymemcached',
    aliases: ['spymemcached-default', 'spy', 'java'],
    matches: 'spymemcached DefaultConnectionFactory (ArrayModNodeLocator, NATIVE_HASH: String.hashCode)',
    weights: false,
    create: (servers) => spymemcachedDefault(servers),
  },
  {
    name: 'memjs',
    aliases: [],
    matches: 'npm memjs default (abs(Java-style string hash) % servers)',
    weights: false,
    create: (servers) => memjs(servers),
  },
  {
    name: 'gomemcache',
    aliases: ['go-memcache'],
    matches: 'github.com/bradfitz/gomemcache ServerList (crc32 IEEE % servers, in list order)',
    weights: false,
    create: (servers) => gomemcache(servers),
  },
  {
    name: 'python-memcached',
    aliases: ['python-memcache', 'memcache.py'],
    matches: 'python-memcached memcache.Client (cmemcache_hash % buckets, a server repeated weight times)',
    weights: true,
    create: (servers) => pythonMemcached(servers),
  },
  {
    name: 'php-memcache-consistent',
    aliases: ['php-memcache', 'pecl-memcache'],
    matches:
      'PHP PECL memcache (the Memcache class) memcache.hash_strategy=consistent (its default) with ' +
      'memcache.hash_function crc32 (default) or fnv, e.g. php-memcache-consistent:fnv; 160 points ' +
      'per unit of weight from "host:port-i", looked up through a 1024-entry table',
    weights: true,
    keyHashes: PHP_MEMCACHE_HASHES,
    defaultKeyHash: 'crc32',
    create: (servers, { keyHash }) => phpMemcacheConsistent(servers, keyHash),
  },
  {
    name: 'php-memcache-standard',
    aliases: ['pecl-memcache-standard'],
    matches:
      'PHP PECL memcache (the Memcache class) memcache.hash_strategy=standard with memcache.hash_function ' +
      'crc32 (default) or fnv: 15 bits of the hash % buckets, a server repeated weight times',
    weights: true,
    keyHashes: PHP_MEMCACHE_HASHES,
    defaultKeyHash: 'crc32',
    create: (servers, { keyHash }) => phpMemcacheStandard(servers, keyHash),
  },
  {
    name: 'perl-cache-memcached',
    aliases: ['cache-memcached'],
    matches: 'Perl Cache::Memcached ((crc32 >> 16) & 0x7fff % buckets, a server repeated weight times)',
    weights: true,
    create: (servers) => perlCacheMemcached(servers),
  },
  {
    name: 'perl-cache-memcached-fast',
    aliases: ['cache-memcached-fast'],
    matches:
      'Perl Cache::Memcached::Fast without ketama_points (its default, meant to match Cache::Memcached; ' +
      'weights scale a continuum)',
    weights: true,
    create: (servers) => perlCacheMemcachedFast(servers),
  },
  {
    name: 'perl-cache-memcached-fast-ketama',
    aliases: ['cache-memcached-fast-ketama'],
    matches:
      'Perl Cache::Memcached::Fast with ketama_points => N, written perl-cache-memcached-fast-ketama:N ' +
      '(CRC-32 points from "host\\0port", N * weight per server)',
    weights: true,
    parameter: { what: 'ketama_points', min: 1, max: 100000 },
    create: (servers, { parameter }) => perlCacheMemcachedFastKetama(servers, parameter ?? 0),
  },
  {
    name: 'twemproxy-ketama',
    aliases: ['nutcracker-ketama'],
    matches:
      'twemproxy (nutcracker) `distribution: ketama` with its `hash:` (fnv1a_64 unless set, e.g. ' +
      'twemproxy-ketama:md5); server names replace host:port on the ring',
    weights: true,
    keyHashes: TWEMPROXY_HASHES,
    defaultKeyHash: 'fnv1a_64',
    create: (servers, { keyHash }) => twemproxyKetama(servers, keyHash ?? TWEMPROXY_HASHES.get('fnv1a_64')!),
  },
  {
    name: 'twemproxy-modula',
    aliases: ['nutcracker-modula'],
    matches: 'twemproxy (nutcracker) `distribution: modula` with its `hash:` (fnv1a_64 unless set)',
    weights: true,
    keyHashes: TWEMPROXY_HASHES,
    defaultKeyHash: 'fnv1a_64',
    create: (servers, { keyHash }) => twemproxyModula(servers, keyHash ?? TWEMPROXY_HASHES.get('fnv1a_64')!),
  },
  {
    name: 'map',
    aliases: ['tcpcopy', '1:1'],
    matches: '1:1 map, the tcpcopy way: a key goes to the new server in the same position as its old server',
    weights: false,
    create: (servers, { source }) => {
      if (!source) throw new RangeError('map needs a source pool');
      if (source.servers.length !== servers.length) {
        throw new RangeError(
          `map pairs servers by position: the source has ${source.servers.length}, this pool ${servers.length}`,
        );
      }
      return new MapDistribution(
        source.distribution,
        Uint16Array.from(servers, (_, i) => i),
      );
    },
  },
];

const BY_NAME = new Map<string, DistributionSpec>();
for (const spec of DISTRIBUTIONS) {
  BY_NAME.set(spec.name, spec);
  for (const alias of spec.aliases) BY_NAME.set(alias, spec);
}

/** Every accepted name, canonical names and aliases, for error messages. */
export function distributionNames(): string[] {
  return [...BY_NAME.keys()];
}

export interface ParsedHashName {
  readonly spec: DistributionSpec;
  /** The key hash function name, when one was given or the distribution has a default. */
  readonly keyHashName: string | undefined;
  /** The number after `name:`, for a distribution that takes one. */
  readonly parameter: number | undefined;
}

/**
 * Reads "name" or "name:function" (`twemproxy-ketama:md5`). Returns a reason
 * string instead of throwing so callers can say where the bad name came from.
 */
export function parseHashName(text: string, keyHashName?: string): ParsedHashName | string {
  const colon = text.indexOf(':', text.startsWith('1:1') ? 3 : 0);
  const name = (colon < 0 ? text : text.slice(0, colon)).trim().toLowerCase();
  const fn =
    colon < 0
      ? keyHashName
      : text
          .slice(colon + 1)
          .trim()
          .toLowerCase();
  const spec = BY_NAME.get(name);
  if (!spec)
    return `unknown distribution '${name}' (allowed: ${DISTRIBUTIONS.map((d) => d.name).join(', ')})`;
  if (spec.parameter) {
    const { what, min, max } = spec.parameter;
    const n = fn === undefined ? NaN : Number(fn);
    if (fn === undefined || !/^\d+$/.test(fn) || n < min || n > max) {
      return `${spec.name} needs its ${what} as ${spec.name}:N with N an integer ${min}-${max} (got '${fn ?? ''}')`;
    }
    return { spec, keyHashName: fn, parameter: n };
  }
  if (fn !== undefined) {
    if (!spec.keyHashes) return `${spec.name} takes no hash function (got '${fn}')`;
    if (!spec.keyHashes.has(fn)) {
      return `unknown hash function '${fn}' for ${spec.name} (allowed: ${[...spec.keyHashes.keys()].join(', ')})`;
    }
  }
  return { spec, keyHashName: fn ?? spec.defaultKeyHash, parameter: undefined };
}

export interface CreateDistributionOptions {
  /** Key hash function name, as a pools file's `hash_function:`. */
  keyHash?: string | undefined;
  source?: DistributionContext['source'];
  /** Where the name came from, for the error message (a file, `--hash`). */
  where?: string;
}

/** Builds the distribution named `hash` ("ketama", "twemproxy-ketama:md5", ...) over `servers`. */
export function createDistribution(
  hash: string,
  servers: readonly Server[],
  options: CreateDistributionOptions = {},
): Distribution {
  const where = options.where ?? '--hash';
  const parsed = parseHashName(hash, options.keyHash);
  if (typeof parsed === 'string') throw new ConfigError(where, 'hash', parsed);
  if (servers.length === 0) throw new ConfigError(where, 'servers', 'a pool needs at least one server');
  const keyHash =
    parsed.keyHashName === undefined ? undefined : parsed.spec.keyHashes?.get(parsed.keyHashName);
  try {
    return parsed.spec.create(servers, { keyHash, source: options.source, parameter: parsed.parameter });
  } catch (err) {
    if (err instanceof RangeError) throw new ConfigError(where, 'hash', err.message);
    throw err;
  }
}
