/**
 * The randomized differential test: generated text and meta command streams
 * (valid and malformed, pipelined, split at random points) sent byte for
 * byte to a real memcached and through memshift proxy in every mode; the
 * replies must be identical. The seed is printed; rerun one with
 * MEMSHIFT_DIFF_SEED=<seed> (random: a new one), a longer run with MEMSHIFT_DIFF_COUNT=100000.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Proxy, type ProxyMode } from '../src/jobs/proxy.js';
import { parsePoolSpec } from '../src/topology/pool.js';
import { exchange, show } from './support/differential.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';
import { pieces, random, sequence } from './support/random-commands.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const f of cleanups.reverse()) await f().catch(() => undefined);
});

async function server(): Promise<MemcachedServer> {
  const s = await startMemcached();
  cleanups.push(() => s.stop());
  return s;
}

const MODES: readonly ProxyMode[] = ['shadow', 'warm', 'dual'];
/** Sequences per mode in CI: a few seconds each. */
const COUNT = Number(process.env.MEMSHIFT_DIFF_COUNT ?? 3 * 1000);
// A fixed seed by default so that a CI run is reproducible; MEMSHIFT_DIFF_SEED=random explores new ones.
const SEED_TEXT = process.env.MEMSHIFT_DIFF_SEED ?? '20261128';
const SEED = SEED_TEXT === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(SEED_TEXT);

describe('memshift proxy: randomized differential test against memcached', { timeout: 3_600_000 }, () => {
  for (const mode of MODES) {
    const count = Math.ceil(COUNT / MODES.length);
    it(`${count} random sequences in ${mode} mode (seed ${SEED})`, async (t) => {
      t.diagnostic(`seed ${SEED}: rerun with MEMSHIFT_DIFF_SEED=${SEED}`);
      const direct = await server();
      const [primary, secondary] = await Promise.all([server(), server()]);
      const p = new Proxy({
        mode,
        primary: parsePoolSpec(primary!.address, 'ketama'),
        secondary: parsePoolSpec(secondary!.address, 'ketama'),
      });
      const { port } = await p.start();
      cleanups.push(async () => void (await p.stop(500, 500)));
      const r = random(SEED);
      for (let i = 0; i < count; i++) {
        const { bytes, splits } = sequence(r);
        const parts = pieces(bytes, splits);
        const want = await exchange(direct.port, parts, { pad: true });
        const got = await exchange(port, parts, { pad: true });
        const where = `seed ${SEED}, ${mode}, sequence ${i}, split at [${splits.join(', ')}]: ${show(bytes, 600)}`;
        assert.equal(show(got.reply, 2000), show(want.reply, 2000), where);
        assert.equal(got.closed, want.closed, `${where}: connection closed`);
      }
      t.diagnostic(`${mode}: ${count} sequences identical`);
    });
  }
});
