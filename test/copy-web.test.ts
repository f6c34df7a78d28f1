import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemcachedClient } from '../src/net/client.js';
import { start } from './support/cli.js';
import { startMemcached } from './support/memcached.js';

describe('memshift copy --web', () => {
  it('shows the copy progress on the dashboard and in /metrics', async () => {
    const source = await startMemcached();
    const target = await startMemcached();
    try {
      const client = new MemcachedClient(source.address);
      await Promise.all(
        Array.from({ length: 1000 }, (_, i) => client.set(`cw:${i}`, 'value', { exptime: 600 })),
      );
      await client.close();
      const copy = start([
        'copy',
        '--from',
        source.address,
        '--to',
        target.address,
        '--rate',
        '250',
        '--no-checkpoint',
        '--web',
        '127.0.0.1:0',
        '--json',
      ]);
      const url = await copy.dashboardUrl();
      let total = 0;
      for (let i = 0; i < 60 && total === 0; i++) {
        const snap = (await (await fetch(`${url}snapshot.json`)).json()) as {
          progress?: Record<string, { total: number }>;
        };
        total = snap.progress?.['copy']?.total ?? 0;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(total, 1000);
      const metrics = await (await fetch(`${url}metrics`)).text();
      assert.match(metrics, /^memshift_copy_keys_total\{series="copied"\} \d+$/m);
      assert.equal(await copy.exited, 0, copy.stderr());
      const report = JSON.parse(copy.stdout()) as { total: number; copied: number };
      assert.equal(report.total, 1000);
      assert.equal(report.copied, 1000);
    } finally {
      await source.stop();
      await target.stop();
    }
  });
});
