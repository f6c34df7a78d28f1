/**
 * Two-way mirroring, events ordered by hand: the replayer of the old → new
 * side given its own captured operations (apply) and the peer mirror's writes
 * landing on its source (observePeer) in every order that matters, against
 * real memcached. Fill on read must never bring back a value the other side
 * deleted or replaced, and crossing writes must not leave the pools different.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { MemcachedClient } from '../src/net/client.js';
import type { Operation } from '../src/ops/operation.js';
import { Replayer } from '../src/replay/replayer.js';
import { parsePortRange, PortAllocator, WriteTimes } from '../src/replay/two-way.js';
import { parsePoolSpec } from '../src/topology/pool.js';
import { memshift } from './support/cli.js';
import { startMemcached, type MemcachedServer } from './support/memcached.js';

const PORTS = parsePortRange('20400-20499');

function op(
  command: Operation['command'],
  key: string,
  outcome: Operation['outcome'],
  extra: Partial<Operation>,
): Operation {
  return {
    command,
    key: Buffer.from(key),
    value: undefined,
    flags: undefined,
    exptime: undefined,
    delta: undefined,
    number: undefined,
    outcome,
    protocol: 'text',
    connection: 1,
    timestampMicros: 0,
    name: undefined,
    ...extra,
  };
}
const WINDOW_MS = 2000;

describe('two-way write times', () => {
  it('a local and a peer write within the window conflict, in either order; apart, they do not', () => {
    const times = new WriteTimes({ ports: PORTS, conflictWindowMs: 1000, slots: 1024 });
    assert.equal(times.localWrite(Buffer.from('k7'), 7, 10_000), false);
    assert.equal(times.peerWrite(Buffer.from('k7'), 7, 10_500), true);
    // Answered once: the deletes both sides send then land as peer writes and start nothing more.
    assert.equal(times.peerWrite(Buffer.from('k7'), 7, 10_600), false);
    assert.equal(times.localWrite(Buffer.from('k7'), 7, 10_700), false);
    assert.equal(times.peerWrite(Buffer.from('k7'), 7, 10_800), true, 'a new local write is a new conflict');
    assert.equal(times.peerWrite(Buffer.from('k8'), 8, 20_000), false);
    assert.equal(
      times.localWrite(Buffer.from('k8'), 8, 19_800),
      true,
      'peer write seen first, local write captured earlier',
    );
    // A peer write that landed before ours is older: our replay carries the newer value over.
    assert.equal(times.peerWrite(Buffer.from('k6'), 6, 40_000), false);
    assert.equal(times.localWrite(Buffer.from('k6'), 6, 40_200), false);
    assert.equal(times.peerWrite(Buffer.from('k9'), 9, 30_000), false);
    assert.equal(times.localWrite(Buffer.from('k9'), 9, 31_001), false);
    assert.equal(times.peerWroteSince(9, 30_900), true);
    assert.equal(times.peerWroteSince(9, 31_001), false);
  });

  it('parses port ranges and hands their ports out in turn', () => {
    const ports = new PortAllocator(parsePortRange('30000-30002'));
    assert.deepEqual([ports.take(), ports.take(), ports.take(), ports.take()], [30000, 30001, 30002, 30000]);
    for (const bad of ['80-90', '3000', '5000-4000', '1024-70000', 'a-b']) {
      assert.throws(() => parsePortRange(bad), /port range must be LOW-HIGH/);
    }
  });
});

describe('mirror --two-way-ports (command line)', () => {
  it('refuses a malformed range, and one inside the ephemeral ports, with one line', () => {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const inside = `${low}-${Number(low) + 10}`;
    for (const [range, message] of [
      ['80-90', /port range must be LOW-HIGH between 1024 and 65535/],
      [inside, new RegExp(`overlaps this host's ephemeral ports \\(${low}-${high}`)],
    ] as const) {
      const run = memshift([
        'mirror',
        '--port',
        '11211',
        '--to',
        '127.0.0.1:11211',
        '--two-way-ports',
        range,
      ]);
      assert.notEqual(run.status, 0);
      assert.match(run.stderr, /^memshift: --two-way-ports/);
      assert.match(run.stderr, message);
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    }
  });
});

describe('two-way replay against real memcached (events ordered by hand)', () => {
  let a: MemcachedServer;
  let b: MemcachedServer;
  let onA: MemcachedClient;
  let onB: MemcachedClient;

  before(async () => {
    a = await startMemcached();
    b = await startMemcached();
    onA = new MemcachedClient(a.address);
    onB = new MemcachedClient(b.address);
  });
  after(async () => {
    await onA.close();
    await onB.close();
    await a.stop();
    await b.stop();
  });

  /** The old → new side: source A, target B. */
  function sideA(twoWay = true): Replayer {
    return new Replayer({
      target: parsePoolSpec(b.address, 'modula', { name: 'new' }),
      source: a.address,
      fill: true,
      ...(twoWay ? { twoWay: { ports: PORTS, conflictWindowMs: WINDOW_MS } } : {}),
    });
  }

  async function settle(replayer: Replayer): Promise<void> {
    assert.equal(await replayer.drain(20_000), true, JSON.stringify(replayer.status()));
  }

  async function onBValue(key: string): Promise<string | undefined> {
    return (await onB.get(key))?.value.toString();
  }

  const at = (ms: number): Partial<Operation> => ({ timestampMicros: ms * 1000 });
  const hit = (key: string, value: string, ms: number): Operation =>
    op('get', key, 'hit', { value: Buffer.from(value), flags: 0, ...at(ms) });
  const set = (key: string, value: string, ms: number): Operation =>
    op('set', key, 'stored', { value: Buffer.from(value), flags: 0, exptime: 0, ...at(ms) });
  const del = (key: string, ms: number): Operation => op('delete', key, 'deleted', at(ms));

  /** A key both pools held; then a switched host deletes it on B (its delete is on its way to A). */
  async function deletedOnB(key: string): Promise<void> {
    await onA.set(key, 'v1', { exptime: 300 });
    await onB.set(key, 'v1', { exptime: 300 });
    await onB.delete(key);
  }

  it('without two-way, a stale hit on A is filled back into B after B deleted the key', async () => {
    const replayer = sideA(false);
    await deletedOnB('tw:hazard');
    replayer.apply(hit('tw:hazard', 'v1', Date.now()));
    await settle(replayer);
    assert.equal(await onBValue('tw:hazard'), 'v1', 'the hazard two-way mode exists for');
    await replayer.close();
  });

  it("the peer's delete seen while the fill looks up its TTL: nothing is filled", async () => {
    const replayer = sideA();
    await deletedOnB('tw:during');
    const now = Date.now();
    replayer.apply(hit('tw:during', 'v1', now));
    // The TTL lookup on A is in flight (its reply comes in a later turn): the peer's delete lands now.
    replayer.observePeer(del('tw:during', now + 1));
    await settle(replayer);
    assert.equal(await onBValue('tw:during'), undefined);
    assert.equal(replayer.counters.fills.applied, 0);
    assert.equal(replayer.counters.peer.writes, 1);
    await replayer.close();
  });

  it("the peer's delete seen before the stale hit: nothing is filled", async () => {
    const replayer = sideA();
    await deletedOnB('tw:before');
    const now = Date.now();
    replayer.observePeer(del('tw:before', now));
    replayer.apply(hit('tw:before', 'v1', now + 5));
    await settle(replayer);
    assert.equal(await onBValue('tw:before'), undefined);
    assert.equal(replayer.counters.fills.skippedBy.peer_write, 1);
    await replayer.close();
  });

  it("the peer's delete seen after the fill landed: the key is deleted on B again", async () => {
    const replayer = sideA();
    await deletedOnB('tw:after');
    const now = Date.now();
    replayer.apply(hit('tw:after', 'v1', now));
    await settle(replayer);
    assert.equal(await onBValue('tw:after'), 'v1', 'the fill landed first');
    replayer.observePeer(del('tw:after', now + 20));
    await settle(replayer);
    assert.equal(await onBValue('tw:after'), undefined);
    assert.equal(replayer.counters.peer.conflicts, 1);
    await replayer.close();
  });

  it('crossing writes (A set, B set) leave the key on neither side, whichever is seen first', async () => {
    for (const peerFirst of [false, true]) {
      const replayer = sideA();
      const key = `tw:cross:${peerFirst}`;
      const now = Date.now();
      // B's own write landed on B; its replay reaches A 30 ms after A's own write.
      await onB.set(key, 'b-value');
      await onA.set(key, 'b-value'); // B's replay landed on A after A's own write
      const mine = set(key, 'a-value', now);
      const peers = set(key, 'b-value', now + 30);
      if (peerFirst) {
        replayer.observePeer(peers);
        replayer.apply(mine);
      } else {
        replayer.apply(mine);
        replayer.observePeer(peers);
      }
      await settle(replayer);
      assert.equal(await onBValue(key), undefined, `peer seen first: ${peerFirst}`);
      assert.equal(await onA.get(key), undefined, 'A holds the peer value: deleted there too');
      assert.equal(replayer.counters.peer.conflicts, 1);
      await replayer.close();
    }
  });

  it('writes farther apart than the window are mirrored as usual', async () => {
    const replayer = sideA();
    const now = Date.now();
    replayer.observePeer(set('tw:apart', 'old', now - 3 * WINDOW_MS));
    replayer.apply(set('tw:apart', 'new', now));
    replayer.apply(del('tw:apart:gone', now));
    await settle(replayer);
    assert.equal(await onBValue('tw:apart'), 'new');
    assert.equal(replayer.counters.peer.conflicts, 0);
    // Reads of the peer change nothing and are only counted.
    replayer.observePeer(hit('tw:apart', 'new', now + 10));
    assert.equal(replayer.counters.peer.seen, 2);
    assert.equal(replayer.counters.peer.writes, 1);
    await replayer.close();
  });
});
