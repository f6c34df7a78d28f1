/**
 * A capture that loses packets says so: real tcpdump on lo with a kernel ring
 * of a single slot cannot keep up with a burst of pipelined requests, so the
 * kernel drops packets. Those drops and the stream gaps they leave are
 * counted, warned about while mirror runs, shown on /metrics, told in the
 * summary with the repair command, and make the exit status 1.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemcachedClient } from '../src/net/client.js';
import { start } from './support/cli.js';
import { startMemcached } from './support/memcached.js';

describe('memshift mirror when the capture loses packets', () => {
  it('counts kernel drops and stream gaps, warns, and exits 1 pointing to the repair', async () => {
    const source = await startMemcached();
    const target = await startMemcached();
    const mirror = start([
      'mirror',
      '-i',
      'lo',
      '--port',
      String(source.port),
      '--to',
      target.address,
      // One ring slot (libpcap rounds the buffer up to one snap-length frame).
      '--capture-buffer',
      '1k',
      '--web',
      '127.0.0.1:0',
    ]);
    const client = new MemcachedClient(source.address, { connections: 4, maxPending: 10_000 });
    try {
      const url = await mirror.dashboardUrl();
      for (let i = 0; i < 200 && !/capturing on lo/.test(mirror.stderr()); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.match(mirror.stderr(), /capturing on lo .*ring 1 KiB/);
      // Bursts of pipelined sets until mirror warns (bounded: 100 bursts).
      const value = Buffer.alloc(2000, 'x');
      for (let burst = 0; burst < 100 && !/capture is losing traffic/.test(mirror.stderr()); burst++) {
        const sets: Promise<unknown>[] = [];
        for (let i = 0; i < 2000; i++) sets.push(client.set(`loss:${burst}:${i}`, value));
        await Promise.all(sets);
        await new Promise((resolve) => setTimeout(resolve, 100)); // one loss interval is 1 s: let it pass
      }
      assert.match(
        mirror.stderr(),
        /memshift: warning: capture is losing traffic: \d+ packets dropped by the kernel, \d+ stream gaps;.*run `memshift repair`/,
      );
      // /metrics counts the loss (read once more after the warning's interval).
      let metrics = '';
      for (let i = 0; i < 100 && !/capture_loss_total\{series="kernel drops"\} [1-9]/.test(metrics); i++) {
        metrics = await (await fetch(`${url}metrics`)).text();
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.match(metrics, /^memshift_mirror_capture_loss_total\{series="kernel drops"\} [1-9]\d*$/m);
      assert.match(metrics, /^memshift_mirror_capture_loss_total\{series="stream gaps"\} [1-9]\d*$/m);
      mirror.child.kill('SIGINT');
      assert.equal(await mirror.exited, 1, mirror.stderr());
      const drops = Number(
        /(\d+) packets dropped by the kernel, (\d+) stream gaps \(/.exec(mirror.stdout())?.[1],
      );
      assert.ok(drops > 0, mirror.stdout());
      assert.match(
        mirror.stdout(),
        /WARNING: capture lost traffic: .*Run `memshift repair` before the switch\./,
      );
    } finally {
      client.destroy();
      mirror.child.kill('SIGKILL');
      await source.stop();
      await target.stop();
    }
  });
});
