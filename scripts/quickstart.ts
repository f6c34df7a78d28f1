/**
 * The quick start's main job: starts two local memcached instances on free
 * loopback ports, puts an application-like load on them through memshift's
 * client, shows them with `memshift stats`, and stops them again.
 */
import { MemcachedClient } from '../src/net/client.js';
import { startMemcached } from '../src/jobs/local-memcached.js';
import { main } from '../src/ui/cli.js';

const KEYS = 5000;

const servers = await Promise.all([startMemcached({ memoryMb: 64 }), startMemcached({ memoryMb: 128 })]);
try {
  console.log(
    `Started memcached on ${servers.map((s) => s.address).join(' and ')}; loading ${KEYS} keys...\n`,
  );
  const clients = servers.map((s) => new MemcachedClient(s.address));
  for (let i = 0; i < KEYS; i++) {
    const client = clients[i % clients.length] as MemcachedClient;
    void client.set(`user:${i}`, Buffer.alloc(100 + (i % 900), i % 256), { exptime: 3600 });
    if (i % 1000 === 999) await client.get(`user:${i}`);
  }
  // Reads of every key and of a fifth as many that were never written: misses the application would fill.
  for (let i = 0; i < KEYS * 1.2; i++) {
    const client = clients[i % clients.length] as MemcachedClient;
    void client.get(`user:${i}`);
  }
  await Promise.all(clients.map((c) => c.close()));
  console.log(`$ memshift stats ${servers.map((s) => s.address).join(' ')}`);
  process.exitCode = await main(['stats', ...servers.map((s) => s.address)]);
} finally {
  await Promise.all(servers.map((s) => s.stop()));
}
