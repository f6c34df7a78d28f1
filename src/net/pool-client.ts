import type { Pool } from '../topology/pool.js';
import { MemcachedClient, type ClientOptions, type Key } from './client.js';

/**
 * Clients for every server of a pool, and the one a key belongs to by the
 * pool's distribution: what an application's client library does.
 */
export class PoolClient {
  readonly pool: Pool;
  readonly clients: readonly MemcachedClient[];

  constructor(pool: Pool, options: Partial<ClientOptions> = {}) {
    this.pool = pool;
    this.clients = pool.servers.map((server) => new MemcachedClient(server, options));
  }

  /** The client of the server that owns `key`. */
  clientFor(key: Key): MemcachedClient {
    const bytes = typeof key === 'string' ? Buffer.from(key) : key;
    return this.clients[this.pool.distribution.serverFor(bytes)] as MemcachedClient;
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
  }

  destroy(): void {
    for (const c of this.clients) c.destroy();
  }
}
