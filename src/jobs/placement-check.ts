/**
 * Does the pool's distribution put keys where they are? Given keys read from
 * each server of a live pool (with the server that holds each), count how
 * many sit on the server the configured distribution names. A wrong
 * distribution (pymemcache given bytes keys, a host name hashed another way,
 * a client setting left out) shows as a share near 1/servers instead of 1,
 * and every other known distribution is tried on the same keys, so memshift
 * can name the ones that fit better instead of placing keys silently wrong.
 */
import { ConfigError } from '../topology/config-error.js';
import { DISTRIBUTIONS, createDistribution, type DistributionSpec } from '../topology/distribution.js';
import type { Pool } from '../topology/pool.js';

export interface HeldKey {
  readonly key: Buffer;
  /** Index in the pool's server list of the server the key was read from. */
  readonly holder: number;
}

export interface PlacementAgreement {
  /** A distribution name as --hash takes it ("twemproxy-ketama:md5"). */
  readonly hash: string;
  /** Share of the checked keys it places on the server that holds them, 0-1. */
  readonly agree: number;
}

export interface PlacementCheck extends PlacementAgreement {
  /** Keys compared (at most the limit). */
  readonly checked: number;
  /** Distributions that place more of these keys where they are, best first (at most 3). */
  readonly better: readonly PlacementAgreement[];
}

/** Cache::Memcached::Fast's ketama_points values tried: the documented example and libketama's count. */
const TRIED_POINTS = [150, 160];

function candidateNames(spec: DistributionSpec): string[] {
  if (spec.parameter) return TRIED_POINTS.map((n) => `${spec.name}:${n}`);
  if (spec.keyHashes) return [...spec.keyHashes.keys()].map((fn) => `${spec.name}:${fn}`);
  return [spec.name];
}

function agreement(pool: Pool, hash: string, keys: readonly HeldKey[]): number | undefined {
  let distribution;
  try {
    distribution = createDistribution(hash, pool.servers);
  } catch (err) {
    // A distribution that cannot take these servers as written (a host name for spymemcached).
    if (err instanceof ConfigError) return undefined;
    throw err;
  }
  let agree = 0;
  for (const { key, holder } of keys) if (distribution.serverFor(key) === holder) agree++;
  return agree / keys.length;
}

/**
 * Checks `pool`'s distribution against where `keys` are held. Undefined for a
 * pool of one server or no keys, where any distribution agrees.
 */
export function checkPlacement(
  pool: Pool,
  keys: readonly HeldKey[],
  limit = 20_000,
): PlacementCheck | undefined {
  if (pool.servers.length < 2 || keys.length === 0) return undefined;
  const checked = keys.slice(0, limit);
  const own = pool.distribution;
  let agree = 0;
  for (const { key, holder } of checked) if (own.serverFor(key) === holder) agree++;
  const share = agree / checked.length;
  const hash = pool.hashFunction === undefined ? pool.hash : `${pool.hash}:${pool.hashFunction}`;
  const better: PlacementAgreement[] = [];
  if (agree < checked.length) {
    for (const spec of DISTRIBUTIONS) {
      if (spec.name === 'map') continue;
      for (const name of candidateNames(spec)) {
        const other = agreement(pool, name, checked);
        if (other !== undefined && other > share) better.push({ hash: name, agree: other });
      }
    }
    better.sort((a, b) => b.agree - a.agree);
  }
  return { hash, agree: share, checked: checked.length, better: better.slice(0, 3) };
}
