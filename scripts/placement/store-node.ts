/**
 * Stores every key of a placement job through the npm clients `memcached`
 * (hashring), `memjs` and `memcache-plus`, for scripts/placement/produce.py. Built by tsc
 * into dist/scripts/placement/store-node.js.
 *
 * Usage: node store-node.js JOB.json
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

interface Job {
  servers: { host: string; port: number; weight: number }[];
  options: { client: 'memcached' | 'memjs' | 'memcache-plus' };
  keys: string[];
}

interface MemcachedCtor {
  new (
    servers: Record<string, number> | string[],
    options?: Record<string, unknown>,
  ): {
    set(key: string, value: string, lifetime: number, cb: (err: unknown) => void): void;
    end(): void;
  };
}
interface MemjsModule {
  Client: {
    create(
      servers: string,
      options?: Record<string, unknown>,
    ): {
      set(key: string, value: string, options: { expires?: number }): Promise<boolean>;
      close(): void;
    };
  };
}

interface MemcachePlusCtor {
  new (options: Record<string, unknown>): {
    set(key: string, value: string, ttl: number): Promise<unknown>;
    disconnect(): Promise<unknown>;
  };
}

const require = createRequire(import.meta.url);
const job = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as Job;
let stored = 0;
let failed = 0;

if (job.options.client === 'memcached') {
  const Memcached = require('memcached') as MemcachedCtor;
  // The object form carries weights; every weight 1 is the same ring as a plain list.
  const servers: Record<string, number> = {};
  for (const s of job.servers) servers[`${s.host}:${s.port}`] = s.weight;
  const client = new Memcached(servers, { retries: 0, timeout: 2000 });
  for (const key of job.keys) {
    const ok = await new Promise<boolean>((resolve) => client.set(key, 'v', 0, (err) => resolve(!err)));
    if (ok) stored++;
    else failed++;
  }
  client.end();
} else if (job.options.client === 'memcache-plus') {
  const MemcachePlus = require('memcache-plus') as MemcachePlusCtor;
  const client = new MemcachePlus({
    hosts: job.servers.map((s) => `${s.host}:${s.port}`),
    reconnect: false,
    bufferBeforeError: 10000,
  });
  for (const key of job.keys) {
    try {
      await client.set(key, 'v', 0);
      stored++;
    } catch {
      failed++;
    }
  }
  await client.disconnect();
} else {
  const memjs = require('memjs') as MemjsModule;
  const client = memjs.Client.create(job.servers.map((s) => `${s.host}:${s.port}`).join(','), {
    retries: 0,
    logger: { log: () => undefined },
  });
  for (const key of job.keys) {
    try {
      if (await client.set(key, 'v', { expires: 0 })) stored++;
      else failed++;
    } catch {
      failed++;
    }
  }
  client.close();
}
console.log(JSON.stringify({ stored, failed }));
