/**
 * The limits of the servers in front of memshift, read from them rather than
 * assumed (DESIGN.md, invariant 8): `stats settings` gives `item_size_max`
 * (memcached's `-I`, 1 MiB by default and up to 1 GiB), the largest item a
 * server stores. A value memshift parses from a server can be that large;
 * a value it writes must fit the receiving server's item, header included.
 */
import { itemTooLarge } from '../protocol/ascii-server.js';
import { KEY_MAX_BYTES, withLimits, type Limits } from '../protocol/limits.js';
import type { MemcachedClient } from './client.js';
import { readVersion, speaksMeta } from './server-version.js';

/** What memcached 1.6 assumes when a server does not say (`-I` default). */
export const DEFAULT_ITEM_SIZE_MAX = 1024 * 1024;

export interface ServerLimits {
  readonly address: string;
  /** `item_size_max` of `stats settings`: the largest item, header, key and value together. */
  readonly itemSizeMax: number;
  /** What `version` answered (undefined: it could not be read). */
  readonly version?: string | undefined;
  /** Whether memshift may send it meta commands (server-version.ts); absent: not known, assumed so. */
  readonly meta?: boolean;
}

/**
 * Reads one server's limits and version; a server that does not report
 * `item_size_max` (memcached before 1.4.x reports it always) gets memcached's default.
 */
export async function readServerLimits(client: MemcachedClient): Promise<ServerLimits> {
  const version = await readVersion(client);
  const settings = await client.stats(['settings']);
  const reported = Number(settings.get('item_size_max'));
  const itemSizeMax = Number.isSafeInteger(reported) && reported > 0 ? reported : DEFAULT_ITEM_SIZE_MAX;
  return { address: client.address, itemSizeMax, version, meta: speaksMeta(version) };
}

/**
 * Whether a server with `limits` can store a value of `valueBytes` under a
 * key of `keyBytes` with these client flags (memcached's own arithmetic:
 * protocol/ascii-server.ts, itemTooLarge).
 */
export function itemFits(limits: ServerLimits, keyBytes: number, valueBytes: number, flags: number): boolean {
  // The stored item keeps the value's trailing \r\n (protocol.txt, "Storage commands").
  return !itemTooLarge(limits.itemSizeMax, keyBytes, flags, valueBytes + 2);
}

/**
 * Parser limits for reading replies from `servers`: no value can be larger
 * than the largest item any of them stores, or than `maxValueBytes` when the
 * user set it.
 */
export function parserLimitsFor(servers: readonly ServerLimits[], maxValueBytes?: number): Limits {
  const largest = servers.reduce((m, s) => Math.max(m, s.itemSizeMax), DEFAULT_ITEM_SIZE_MAX);
  return withLimits({ maxValueBytes: maxValueBytes ?? largest, maxKeyBytes: KEY_MAX_BYTES });
}
