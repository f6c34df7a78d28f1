import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemcachedClient } from '../src/net/client.js';
import { start } from './support/cli.js';
import { startMemcached } from './support/memcached.js';

describe('memshift proxy --web', () => {
  it("charts the proxy's counters and serves them as metrics", async () => {
    const old = await startMemcached();
    const next = await startMemcached();
    try {
      const proxy = start([
        'proxy',
        '--from',
        old.address,
        '--to',
        next.address,
        '--listen',
        '127.0.0.1:0',
        '--web',
        '127.0.0.1:0',
        '--json',
      ]);
      const url = await proxy.dashboardUrl();
      let listening: string | undefined;
      for (let i = 0; i < 100 && !listening; i++) {
        listening = /listening on (\S+)/.exec(proxy.stderr())?.[1];
        if (!listening) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(listening, proxy.stderr());
      const client = new MemcachedClient(listening);
      for (let i = 0; i < 50; i++) assert.equal(await client.set(`pw:${i}`, 'v'), 'STORED');
      await client.close();
      const snap = (await (await fetch(`${url}snapshot.json`)).json()) as {
        counters: Record<string, number>;
      };
      assert.equal(snap.counters['requests/clients'], 50);
      assert.equal(snap.counters['errors/primary'], 0);
      const metrics = await (await fetch(`${url}metrics`)).text();
      assert.match(metrics, /^memshift_proxy_requests_total\{series="clients"\} 50$/m);
      proxy.child.kill('SIGINT');
      assert.equal(await proxy.exited, 0, proxy.stderr());
    } finally {
      await old.stop();
      await next.stop();
    }
  });
});
