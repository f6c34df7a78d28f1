/**
 * TTLs through `memshift mirror`: a relative expiry counts down from the time
 * the source saw the write, so a write that reaches a stalled target late
 * never lives longer there than on the source (real memcached, real tcpdump
 * on lo, a target SIGSTOPped for 3 s).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MemcachedClient } from '../src/net/client.js';
import { mirrorRig, waitForRequests } from './support/mirror.js';

async function ttl(client: MemcachedClient, key: string): Promise<number | undefined> {
  const reply = await client.mg(key, ['t']);
  if (reply.code !== 'HD' && reply.code !== 'VA') return undefined;
  return Number(reply.flags.find((f) => f.startsWith('t'))?.slice(1));
}

describe('mirror: TTLs from the capture time (real memcached, real tcpdump on lo)', () => {
  it('a write applied 3 s late keeps no more of its TTL than the source', async () => {
    const rig = await mirrorRig({ targets: 1 });
    try {
      const keys = Array.from({ length: 20 }, (_, i) => `ttl:${i}`);
      const stalled = rig.targets[0]!;
      stalled.process.kill('SIGSTOP');
      try {
        for (const [i, key] of keys.entries()) {
          if (i % 2 === 0) await rig.sourceClient.set(key, 'v', { exptime: 30 });
          else {
            await rig.sourceClient.set(key, 'v', { exptime: 3600 });
            await rig.sourceClient.touch(key, 40);
          }
        }
        // Expires while the target is stalled: must not appear there afterwards. The sleep is that
        // expiry (2 s TTL) passing in real time on the source.
        await rig.sourceClient.set('ttl:short', 'v', { exptime: 2 });
        await sleep(3000);
      } finally {
        stalled.process.kill('SIGCONT');
      }
      await waitForRequests(rig.job, keys.length + 11);
      const summary = await rig.finish();
      assert.equal(summary.error, undefined);
      for (const key of keys) {
        const [source, target] = [
          await ttl(rig.sourceClient, key),
          await ttl(rig.targetClient.clientFor(key), key),
        ];
        assert.ok(source !== undefined && source > 20, `${key}: ${source} s left on the source`);
        assert.ok(target !== undefined, `${key}: missing on the target`);
        assert.ok(target <= source, `${key}: ${target} s left on the target, ${source} s on the source`);
        // Shorter by the clock margin, and by however stale the resumed target's clock still was.
        assert.ok(target >= source - 8, `${key}: ${target} s left on the target, ${source} s on the source`);
      }
      assert.equal(await ttl(rig.targetClient.clientFor('ttl:short'), 'ttl:short'), undefined);
    } finally {
      await rig.close();
    }
  });
});
