import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MemcachedClient } from '../src/net/client.js';
import { startMemcached } from './support/memcached.js';

const BIN = fileURLToPath(new URL('../../bin/memshift.js', import.meta.url));

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
      const web = spawn(
        process.execPath,
        [
          BIN,
          'copy',
          '--from',
          source.address,
          '--to',
          target.address,
          '--rate',
          '300',
          '--no-checkpoint',
          '--web',
          '127.0.0.1:0',
          '--json',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let webErr = '';
      let webOut = '';
      web.stderr.on('data', (d: Buffer) => (webErr += d.toString()));
      web.stdout.on('data', (d: Buffer) => (webOut += d.toString()));
      const webExited = new Promise<number | null>((resolve) => web.once('exit', resolve));
      let url: string | undefined;
      for (let i = 0; i < 100 && !url; i++) {
        url = /dashboard on (http:\/\/\S+\/)/.exec(webErr)?.[1];
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(url, webErr);
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
      assert.equal(await webExited, 0, webErr);
      const report = JSON.parse(webOut) as { total: number; copied: number };
      assert.equal(report.total, 1000);
      assert.equal(report.copied, 1000);
    } finally {
      await source.stop();
      await target.stop();
    }
  });
});
