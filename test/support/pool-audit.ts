/**
 * Reading two pools key by key to tell how the new one stands against the
 * old: what it holds that the old pool lacks (resurrected), what it holds
 * with another value or flags (older), what it misses.
 */
import { MemcachedClient } from '../../src/net/client.js';
import { parsePoolSpec, type Pool } from '../../src/topology/pool.js';

export function ketamaPool(addresses: string[]): Pool {
  return parsePoolSpec(addresses.join(','), 'ketama', { where: 'test' });
}

/** Clients for a pool's servers, and the one that owns a key. */
export class PoolClients {
  readonly clients: MemcachedClient[];
  constructor(readonly pool: Pool) {
    this.clients = pool.servers.map((s) => new MemcachedClient(s.address));
  }
  owner(key: Buffer | string): MemcachedClient {
    return this.clients[this.pool.distribution.serverFor(Buffer.from(key))]!;
  }
  async flush(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.flushAll()));
  }
  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
  }
}

export interface Audit {
  /** On the target, gone from the source. */
  resurrected: string[];
  /** On both, with a value or flags other than the source's. */
  older: string[];
  /** On the source, not on the target. */
  missing: number;
  same: number;
}

/** Reads every key on both pools (each on the server that owns it) and sorts out how the target stands. */
export async function audit(src: PoolClients, dst: PoolClients, keys: string[]): Promise<Audit> {
  const out: Audit = { resurrected: [], older: [], missing: 0, same: 0 };
  for (let i = 0; i < keys.length; i += 500) {
    const slice = keys.slice(i, i + 500);
    const [a, b] = await Promise.all([
      Promise.all(slice.map((k) => src.owner(k).mg(k, ['v', 'f']))),
      Promise.all(slice.map((k) => dst.owner(k).mg(k, ['v', 'f']))),
    ]);
    slice.forEach((k, n) => {
      const s = a[n]!;
      const t = b[n]!;
      if (t.code !== 'VA') {
        if (s.code === 'VA') out.missing++;
        return;
      }
      if (s.code !== 'VA') out.resurrected.push(k);
      else if (!s.value!.equals(t.value!) || s.flags.join() !== t.flags.join()) out.older.push(k);
      else out.same++;
    });
  }
  return out;
}

/** Sets every key on the server of `on` that owns it, 500 at a time. */
export async function load(
  on: PoolClients,
  keys: string[],
  value: (k: string) => string,
  options: { flags?: number; exptime?: number } = {},
): Promise<void> {
  for (let i = 0; i < keys.length; i += 500) {
    await Promise.all(
      keys
        .slice(i, i + 500)
        .map((k) =>
          on.owner(k).set(k, value(k), { flags: options.flags ?? 5, exptime: options.exptime ?? 3600 }),
        ),
    );
  }
}
