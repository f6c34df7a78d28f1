/**
 * Two-way mirroring live: two real memcached servers (old A, new B), two
 * mirrors capturing on lo with real tcpdump (A → B and B → A, one agreed port
 * range), clients writing on both sides as during a rolling switch. Nothing
 * loops (each mirror replays exactly the application's operations on its
 * source, never the other mirror's writes), a key deleted on B is not brought
 * back by fills of stale hits on A, and both pools end equal.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MirrorJob, type MirrorSummary } from '../src/jobs/mirror.js';
import { MemcachedClient } from '../src/net/client.js';
import { parsePortRange } from '../src/replay/two-way.js';
import { parsePoolSpec } from '../src/topology/pool.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

const PORTS = parsePortRange('20500-20599');

function mirror(from: MemcachedServer, to: MemcachedServer): MirrorJob {
  return new MirrorJob({
    routes: [
      { sourcePort: from.port, target: parsePoolSpec(to.address, 'modula', { name: 'other' }), mapped: true },
    ],
    sourceHost: '127.0.0.1',
    interface: 'lo',
    immediate: true,
    excludeClients: [],
    drainMs: 10_000,
    twoWay: { ports: PORTS, conflictWindowMs: 2000 },
    replay: {
      fill: true,
      fillRatePerSecond: 100_000,
      maxQueuedPerServer: 100_000,
      maxRememberedKeys: 100_000,
    },
  });
}

describe('two-way mirroring live (tcpdump on lo, two mirrors)', () => {
  let a: MemcachedServer;
  let b: MemcachedServer;
  let ab: MirrorJob;
  let ba: MirrorJob;
  let onA: MemcachedClient;
  let onB: MemcachedClient;

  before(async () => {
    a = await startMemcached();
    b = await startMemcached();
    ab = mirror(a, b);
    ba = mirror(b, a);
    await ab.start();
    await ba.start();
    // Connected once capture runs, so every request is paired with its reply from the first.
    onA = new MemcachedClient(a.address, { connections: 2 });
    onB = new MemcachedClient(b.address, { connections: 2 });
  });
  after(async () => {
    await ab.stop().catch(() => undefined);
    await ba.stop().catch(() => undefined);
    onA.destroy();
    onB.destroy();
    await a.stop();
    await b.stop();
  });

  it('mirrors both ways without loops, resurrections or differences', async () => {
    const keys: string[] = [];
    let opsOnA = 0;
    let opsOnB = 0;
    // Before the window: only A is written; B follows.
    const first: Promise<unknown>[] = [];
    for (let i = 0; i < 100; i++) {
      keys.push(`a:${i}`);
      first.push(onA.set(`a:${i}`, `a${i}-v1`, { exptime: 300 }));
      opsOnA++;
    }
    await Promise.all(first);
    await poll('A to B replayed the writes', async () => ab.summary().routes[0]!.replay.applied >= 100);
    assert.equal((await onB.get('a:99'))?.value.toString(), 'a99-v1');
    opsOnB++;

    // The window: switched hosts write and delete on B while the others read and write A.
    const window: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      window.push(onB.delete(`a:${i}`));
      opsOnB++;
    }
    for (let i = 0; i < 40; i++) {
      window.push(onA.get(`a:${i}`)); // stale hits possible for a:0..19: their fills must not land
      opsOnA++;
    }
    for (let i = 0; i < 100; i++) {
      keys.push(`b:${i}`);
      window.push(onB.set(`b:${i}`, `b${i}`, { exptime: 300 }));
      opsOnB++;
    }
    for (let i = 0; i < 50; i++) {
      keys.push(`x:${i}`);
      window.push(onA.set(`x:${i}`, `x${i}-from-a`, { exptime: 300 }));
      window.push(onB.set(`x:${i}`, `x${i}-from-b`, { exptime: 300 }));
      opsOnA++;
      opsOnB++;
    }
    for (let i = 40; i < 60; i++) {
      window.push(onA.set(`a:${i}`, `a${i}-v2`, { exptime: 300 }));
      opsOnA++;
    }
    await Promise.all(window);

    const differences = async (): Promise<string[]> => {
      const out: string[] = [];
      // These reads are application requests too, as both mirrors see them.
      opsOnA += keys.length;
      opsOnB += keys.length;
      for (const key of keys) {
        const [x, y] = await Promise.all([onA.get(key), onB.get(key)]);
        if (x?.value.toString() !== y?.value.toString()) out.push(`${key}: A ${x?.value} B ${y?.value}`);
      }
      return out;
    };
    await poll('both pools equal', async () => (await differences()).length === 0, 20_000);
    await poll('both mirrors saw every application request', async () => {
      const seen = (s: MirrorSummary): number => s.routes[0]!.replay.seen;
      return seen(ab.summary()) >= opsOnA && seen(ba.summary()) >= opsOnB;
    });
    const [sa, sb] = await Promise.all([ab.stop(), ba.stop()]);
    const [seenOnA, seenOnB] = [opsOnA, opsOnB];

    assert.deepEqual(await differences(), []);
    for (let i = 0; i < 20; i++) {
      assert.equal(await onA.get(`a:${i}`), undefined, `a:${i} deleted on B must stay deleted on both`);
      assert.equal(await onB.get(`a:${i}`), undefined, `a:${i} resurrected on B`);
    }
    for (let i = 0; i < 100; i++) assert.equal((await onA.get(`b:${i}`))?.value.toString(), `b${i}`);
    // No loop: each mirror replayed exactly the application's operations on its source; the other
    // mirror's writes there were recognised by their port range and only observed.
    const ra = sa.routes[0]!.replay;
    const rb = sb.routes[0]!.replay;
    assert.equal(ra.seen, seenOnA, JSON.stringify(sa.routes[0]));
    assert.equal(rb.seen, seenOnB, JSON.stringify(sb.routes[0]));
    assert.ok(sa.peerFlows > 0 && sb.peerFlows > 0, 'peer connections recognised on both sides');
    assert.ok(ra.peer.writes >= 100, `A saw B's mirrored writes: ${JSON.stringify(ra.peer)}`);
    assert.ok(rb.peer.writes >= 100, `B saw A's mirrored writes: ${JSON.stringify(rb.peer)}`);
    assert.equal(sa.drained && sb.drained, true);
  });
});

async function poll(what: string, condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
