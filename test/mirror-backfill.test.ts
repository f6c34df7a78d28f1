import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemcachedClient } from '../src/net/client.js';
import { assertMirrored, mirrorRig } from './support/mirror.js';

describe('memshift mirror --backfill', () => {
  it('copies what the source held, and keys mutated or deleted during the copy end up exactly as on the source', async () => {
    const keys = Array.from({ length: 8000 }, (_, i) => `bf:${i}`);
    const rig = await mirrorRig({
      backfill: { rate: 2000, batchKeys: 100 },
      beforeCapture: async (source) => {
        const client = new MemcachedClient(source.address, { connections: 4 });
        await Promise.all(
          keys.map((k, i) =>
            client.set(k, `old-${i}`, { flags: i % 7, exptime: i % 3 === 0 ? 0 : 600 + (i % 50) }),
          ),
        );
        await client.close();
      },
    });
    try {
      const app = new MemcachedClient(rig.source.address);
      // While the copy runs (about 4 s at 2,000 keys/s): rewrite some keys, delete others.
      for (let round = 0; round < 4; round++) {
        const writes: Promise<unknown>[] = [];
        for (let i = round; i < keys.length; i += 16) {
          writes.push(
            i % 2 === 0 ? app.set(keys[i]!, `new-${i}-${round}`, { exptime: 900 }) : app.delete(keys[i]!),
          );
        }
        await Promise.all(writes);
        await new Promise((resolve) => setTimeout(resolve, 700));
      }
      await app.close();
      // The copy finishes by itself (bounded wait).
      for (let i = 0; i < 300; i++) {
        const state = rig.job.summary().backfill?.[0];
        if (state?.report || state?.error) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const summary = await rig.finish();
      const backfill = summary.backfill?.[0];
      assert.equal(backfill?.error, undefined);
      assert.ok(backfill?.report, 'the backfill finished');
      assert.equal(backfill.report.pointInTime, false);
      assert.ok(backfill.report.copied > keys.length / 2, `copied ${backfill.report.copied}`);
      // copy writes the remaining TTL it read, which can come out a second long (its rounding, not mirror's).
      const present = await assertMirrored(rig, keys, 1);
      assert.ok(present < keys.length, 'some keys were deleted on the source');
    } finally {
      await rig.close();
    }
  });
});
